//go:build linux

package deploytest

import "syscall"

// sysProcAttr has the kernel end a Prometheus the test started when the test
// process dies, so a test killed with -9 leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
