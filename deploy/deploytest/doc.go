// Package deploytest checks what deploy/ ships for monitoring against the
// worker it monitors. It has no code of its own, only tests:
//
//   - deploy/prometheus/rules.yaml passes `promtool check rules`, and its unit
//     tests (rules_test.yaml) pass `promtool test rules`, with a firing and a
//     quiet case for every alert;
//   - every PromQL expression of the rules and of the Grafana dashboard
//     (deploy/grafana/stockflow.json) parses, and every series it reads is
//     one the worker exports (derived from worker.NewMetrics, not a list
//     kept by hand) or a recording rule of rules.yaml;
//   - a real Prometheus, loaded with rules.yaml, scrapes a real stockworker
//     under load (internal/harness, the real MariaDB and Kafka) and sees the
//     series, the recording rules and two alerts go pending and resolve.
//
// promtool and prometheus come from Debian's prometheus package
// (scripts/prometheus.sh install). Without them the tests that need them are
// skipped, except under CI=true, where they fail, as a missing service does
// (internal/testsvc).
package deploytest
