package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
)

// Bounds of the Prometheus process.
const (
	promStartBound = 90 * time.Second // until /-/ready answers 200
	promStopBound  = 10 * time.Second // SIGTERM to exit, then SIGKILL
	promHTTPBound  = 5 * time.Second  // one API call
)

// promServer is a prometheus process a test started, on a port of its own,
// with its storage in the test's temporary directory. It is stopped when the
// test ends.
type promServer struct {
	addr    string // 127.0.0.1:port
	logFile string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process is reaped
	client  *http.Client
}

// startPrometheus starts bin scraping target (host:port of a /metrics) every
// second as job "stockworker", evaluating rulesPath every second, and waits
// until it is ready. A port another process takes in the moment between
// choosing and binding it makes Prometheus exit at once: then it is started
// again on another port, up to three times.
func startPrometheus(t *testing.T, bin, rulesPath, target string) *promServer {
	t.Helper()
	rules, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: stockworker
    static_configs:
      - targets: [%q]
`, rules, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		p, err := launchPrometheus(bin, config, filepath.Join(dir, fmt.Sprintf("data%d", attempt)), filepath.Join(dir, fmt.Sprintf("prometheus%d.log", attempt)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.stop)
		err = p.waitReady(promStartBound)
		if err == nil {
			return p
		}
		log := p.log()
		if attempt < 3 && p.exited() && strings.Contains(log, "address already in use") {
			t.Logf("prometheus: %s was taken; trying another port", p.addr)
			continue
		}
		t.Fatalf("prometheus: %v\n%s", err, log)
	}
}

func launchPrometheus(bin, config, data, logFile string) (*promServer, error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+addr,
		"--log.level=info")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &promServer{addr: addr, logFile: logFile, cmd: cmd, done: make(chan struct{}),
		client: &http.Client{Timeout: promHTTPBound}}
	go func() {
		defer close(p.done)
		_ = cmd.Wait()
	}()
	return p, nil
}

func (p *promServer) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL after promStopBound. It is
// idempotent.
func (p *promServer) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(promStopBound):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// log returns the end of the process's output.
func (p *promServer) log() string {
	b, err := os.ReadFile(p.logFile)
	if err != nil {
		return err.Error()
	}
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	return string(b)
}

func (p *promServer) waitReady(bound time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/-/ready", nil)
		resp, err := p.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready (%v)", p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v (last: %s)", bound, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// api calls GET /api/v1/<path> with params and decodes the response's data
// into data; an API error (a query that does not parse, say) is an error.
func (p *promServer) api(ctx context.Context, path string, params url.Values, data any) error {
	u := "http://" + p.addr + "/api/v1/" + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("prometheus %s: %d %.200s: %w", path, resp.StatusCode, body, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("prometheus %s %v: %s: %s", path, params, env.ErrorType, env.Error)
	}
	if data == nil {
		return nil
	}
	return json.Unmarshal(env.Data, data)
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates expr now and returns its instant vector (a scalar result
// is one sample without labels).
func (p *promServer) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.api(ctx, "query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		out := make([]sample, 0, len(raw))
		for _, r := range raw {
			v, err := sampleValue(r.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", expr, err)
			}
			out = append(out, sample{Metric: r.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var raw [2]any
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		v, err := sampleValue(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", expr, err)
		}
		return []sample{{Value: v}}, nil
	}
	return nil, fmt.Errorf("%s: result type %s", expr, data.ResultType)
}

func sampleValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v[1])
	}
	return strconv.ParseFloat(s, 64)
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"` // pending, firing
	Value  string            `json:"value"`
}

func (p *promServer) alerts(ctx context.Context) ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.api(ctx, "alerts", nil, &data)
	return data.Alerts, err
}

// ruleHealth is one rule of /api/v1/rules.
type ruleHealth struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Health    string `json:"health"` // ok, err, unknown (not evaluated yet)
	LastError string `json:"lastError"`
}

func (p *promServer) rules(ctx context.Context) ([]ruleHealth, error) {
	var data struct {
		Groups []struct {
			Rules []ruleHealth `json:"rules"`
		} `json:"groups"`
	}
	err := p.api(ctx, "rules", nil, &data)
	var out []ruleHealth
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, err
}
