package testsvc

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
)

// workerStopBound is how long a worker may take to exit after SIGTERM when
// the test ends, before it is killed.
const workerStopBound = 30 * time.Second

// StartWorkers starts n processes of the stockworker binary bin with
// harness.StartWorkers: only opts.Env of stockworker's settings apply, each
// process gets its own HTTP port (Worker.Addr). When the test ends, processes
// still running get SIGTERM and are killed after 30s; the test fails if one
// exited before it was stopped or had to be killed, and when it failed, for
// whatever reason, every worker's output is logged.
func StartWorkers(t testing.TB, bin string, n int, opts harness.Options) *harness.Workers {
	t.Helper()
	ws, err := harness.StartWorkers(context.Background(), bin, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range ws.Stop(syscall.SIGTERM, workerStopBound) {
			if e.Killed {
				t.Errorf("%v", e.Problem())
			}
		}
		var exit *harness.UnexpectedExit
		if cause := context.Cause(ws.Context()); errors.As(cause, &exit) {
			t.Errorf("%v", cause)
		}
		if t.Failed() {
			for _, w := range ws.List() {
				t.Logf("%s log:\n%s", w.Name(), w.Log())
			}
		}
	})
	return ws
}
