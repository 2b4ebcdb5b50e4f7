//go:build !linux

package harness

import "syscall"

// sysProcAttr has nothing to add outside Linux (no Pdeathsig): the children
// outlive a parent killed with -9 there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
