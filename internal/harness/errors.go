package harness

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by Tail.Next after Close.
var ErrClosed = errors.New("harness: tail closed")

// ErrStopped is the cause of a Workers context after Stop.
var ErrStopped = errors.New("harness: workers stopped")

// UnexpectedExit is the cause of a Workers context when one of its processes
// exits without having been signalled or stopped by the harness.
type UnexpectedExit struct {
	Name string // the process, "worker 1"
	Pid  int
	Err  error // what Wait returned: nil for status 0
}

func (e *UnexpectedExit) Error() string {
	return fmt.Sprintf("%s exited before it was stopped (%s)", e.Name, exitText(e.Err))
}

func (e *UnexpectedExit) Unwrap() error { return e.Err }

// exitText describes what exec.Cmd.Wait returned.
func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}
