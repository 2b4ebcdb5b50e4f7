//go:build linux

package harness

import "syscall"

// sysProcAttr makes the kernel send SIGTERM to a child when the thread that
// started it ends: with the harness's process, as Go does not end its threads
// (only one locked with runtime.LockOSThread that exits would), so a
// benchmark or test killed with -9 leaves no worker behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
