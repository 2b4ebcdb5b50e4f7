package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// workers are the stockworker processes of one demo run. A goroutine per
// process waits for it; ctx is cancelled, with the reason as its cause, as
// soon as a process exits before stop asked it to, so whatever waits on ctx
// gives up at once instead of timing out.
type workers struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	procs    []*workerProc
	logs     []string
	stopping atomic.Bool
}

type workerProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped; err is set then
	err  error
}

// errStopped ends the workers' ctx after stop.
var errStopped = errors.New("workers stopped")

// startWorkers starts n processes of bin with env added to orderctl's
// environment, their output going to one temporary log file each. On an error
// the processes already started are stopped again.
func startWorkers(ctx context.Context, bin, strategy string, n int, env []string) (*workers, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	ws := &workers{ctx: wctx, cancel: cancel}
	for i := range n {
		f, err := os.CreateTemp("", fmt.Sprintf("orderctl-demo-%s-worker%d-*.log", strategy, i+1))
		if err != nil {
			ws.stop(demoStopTimeout)
			return ws, fmt.Errorf("worker log file: %w", err)
		}
		ws.logs = append(ws.logs, f.Name())
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			f.Close()
			ws.stop(demoStopTimeout)
			return ws, fmt.Errorf("start %s: %w", bin, err)
		}
		p := &workerProc{cmd: cmd, done: make(chan struct{})}
		ws.procs = append(ws.procs, p)
		go func() {
			p.err = cmd.Wait()
			f.Close()
			close(p.done)
			if !ws.stopping.Load() {
				cancel(fmt.Errorf("worker %d exited before it was stopped (%s)", i+1, exitText(p.err)))
			}
		}()
	}
	return ws, nil
}

func (ws *workers) logPaths() []string {
	if ws == nil {
		return nil
	}
	return ws.logs
}

// explain returns why a worker died when err is only the consequence (the
// cancelled ctx), else err.
func (ws *workers) explain(err error) error {
	if cause := context.Cause(ws.ctx); cause != nil && errors.Is(err, context.Canceled) &&
		!errors.Is(cause, context.Canceled) && !errors.Is(cause, errStopped) {
		return cause
	}
	return err
}

// stop sends SIGTERM to every process still running and waits up to timeout
// for all of them to exit, then kills the rest. It returns, per process, nil
// for a clean exit (status 0) and the problem otherwise, and waits for every
// watching goroutine before it returns.
func (ws *workers) stop(timeout time.Duration) []error {
	ws.stopping.Store(true)
	defer ws.cancel(errStopped)
	for _, p := range ws.procs {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	errs := make([]error, len(ws.procs))
	expired := false
	for i, p := range ws.procs {
		if !expired {
			select {
			case <-p.done:
			case <-deadline.C:
				expired = true
			}
		}
		if expired {
			select {
			case <-p.done:
				// it made it after all
			default:
				_ = p.cmd.Process.Kill()
				<-p.done
				errs[i] = fmt.Errorf("did not exit within %v of SIGTERM; killed", timeout)
				continue
			}
		}
		if p.err != nil {
			errs[i] = fmt.Errorf("exited with %s after SIGTERM, want status 0", exitText(p.err))
		}
	}
	return errs
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// tailLines returns the last n lines of the file at path (a short note when it
// cannot be read).
func tailLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read the log: %v)", err)}
	}
	defer f.Close()
	const most = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > most {
		_, _ = f.Seek(-most, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read the log: %v)", err)}
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return []string{"(empty)"}
	}
	lines := strings.Split(string(b), "\n")
	return lines[max(0, len(lines)-n):]
}

func removeFiles(paths []string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}
