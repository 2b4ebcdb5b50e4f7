// Command stockbench is stockflow's end-to-end benchmark (`make bench`). It
// drives the real pipeline — a real Kafka broker, stockworker processes
// configured by environment only, a real MariaDB — for each strategy ×
// workload × worker-process count × lanes (LANES, the decisions one consumer
// takes at once), measures throughput, latency at a fixed
// offered rate, MariaDB transactions per order and worker peak RSS, checks
// every run for correctness, and writes a table (stdout), JSON and an SVG
// chart. See `stockbench -help`.
//
// main only wires: signals become a context (a first Ctrl-C stops the run in
// hand, stopping its workers and dropping its database; a second one exits at
// once, and the workers get SIGTERM from the kernel), and the outcome becomes
// the exit code: 0 every run correct, 1 a failed run, 2 usage, 130 interrupted.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, the default action again: a second one kills.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one stockbench command line and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "stockbench: %v\n", err)
		return 2
	}
	if o.From != "" {
		return replay(o, stdout, stderr)
	}
	b := &bench{o: o, stdout: stdout, stderr: stderr}
	res, err := b.run(ctx)
	if len(res.Runs) > 0 || res.DBLimit != nil {
		printTable(stdout, res)
		if werr := writeJSON(o.Out, res); werr != nil {
			fmt.Fprintf(stderr, "stockbench: write %s: %v\n", o.Out, werr)
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintf(stderr, "stockbench: wrote %s\n", o.Out)
		}
		if werr := writeFile(o.SVG, renderSVG(res)); werr != nil {
			fmt.Fprintf(stderr, "stockbench: write %s: %v\n", o.SVG, werr)
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintf(stderr, "stockbench: wrote %s\n", o.SVG)
		}
	}
	fmt.Fprintf(stderr, "stockbench: %.0fs in all\n", res.Seconds)
	switch {
	case err == nil:
		return 0
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "stockbench: interrupted: %v\n", err)
		return 130
	default:
		fmt.Fprintf(stderr, "stockbench: %v\n", err)
		return 1
	}
}

// replay prints the table of a results file and redraws its chart.
func replay(o options, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(o.From)
	if err != nil {
		fmt.Fprintf(stderr, "stockbench: %v\n", err)
		return 1
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintf(stderr, "stockbench: %s: %v\n", o.From, err)
		return 1
	}
	fmt.Fprintf(stdout, "stockbench — %s\n", res.Machine)
	printTable(stdout, &res)
	if err := writeFile(o.SVG, renderSVG(&res)); err != nil {
		fmt.Fprintf(stderr, "stockbench: write %s: %v\n", o.SVG, err)
		return 1
	}
	fmt.Fprintf(stderr, "stockbench: wrote %s\n", o.SVG)
	return 0
}
