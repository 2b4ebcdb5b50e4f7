package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stockflow/stockflow/events"
)

const watchHelp = `orderctl watch prints the outcome events of the events topic as they arrive,
one line each (time, order, type, reason, goods×num, and on rejections the stock
available at decision time). It reads every partition without a consumer group, so
it commits nothing and disturbs no one. Ctrl-C stops it.

Usage:
  orderctl watch [flags]

Examples:
  orderctl watch                        # from now on
  orderctl watch -from-beginning -n 20  # the first 20 events of the topic, then exit
  orderctl watch -json | jq .           # the raw payloads

Output:
  22:31:05  A1001  stock-deducted   16×1 17×2
  22:31:05  A1002  stock-rejected   insufficient_stock  16×1 (available 0)
`

// runWatch is `orderctl watch`.
func runWatch(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("watch", watchHelp, &cfg)
	fromStart := fs.Bool("from-beginning", false, "start at the beginning of the topic instead of its end")
	n := fs.Int("n", 0, "stop after this many events (0: until Ctrl-C)")
	raw := fs.Bool("json", false, "print each event's raw JSON payload instead of a readable line")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("watch", "unexpected argument %q", pos[0])
	}
	if *n < 0 {
		return usagef("watch", "-n must be ≥ 0, got %d", *n)
	}

	t, err := openTail(ctx, cfg.kafka(), cfg.EventsTopic, *fromStart)
	if err != nil {
		return err
	}
	defer t.Close()
	if !*raw {
		where := "from now on"
		if *fromStart {
			where = "from the beginning"
		}
		fmt.Fprintf(stderr, "watching %s %s (Ctrl-C to stop)\n", cfg.EventsTopic, where)
	}
	for seen := 0; *n == 0 || seen < *n; seen++ {
		m, err := t.Next(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return nil // Ctrl-C: a clean stop
			}
			return err
		}
		if *raw {
			fmt.Fprintf(stdout, "%s\n", m.Value)
			continue
		}
		o, err := events.DecodeOutcome(m.Value)
		if err != nil {
			fmt.Fprintf(stdout, "%s  (partition %d offset %d: not an outcome event: %.200q)\n",
				m.Time.In(time.Local).Format("15:04:05"), m.Partition, m.Offset, m.Value)
			continue
		}
		fmt.Fprintln(stdout, formatOutcome(o, time.Local))
	}
	return nil
}
