package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"golang.org/x/sync/errgroup"
)

const loadHelp = `orderctl load publishes N generated orders to the orders topic (acks=all), in
batches from several goroutines, as fast as possible or at -rate orders a second.
Order ids are <prefix>-1 ... <prefix>-N; the default prefix is new on every run, so
runs never collide with each other's ledger rows. Every line takes 1 of a goods:
  -goods hot     every order takes goods -hot-goods (and, with -lines L > 1, the
                 L-1 goods ids after it): the contention case
  -goods spread  each line takes a random goods in 1..-spread-goods (distinct within
                 one order)
Progress goes to stderr (a bar on a terminal, a line every 5s otherwise); the summary
to stdout.

Usage:
  orderctl load -n N [flags]

Examples:
  orderctl load -n 1000                             # 1000 orders of 1 of goods 16
  orderctl load -n 100000 -goods spread -lines 3    # 3 random goods out of 10000 each
  orderctl load -n 6000 -rate 200                   # 200 orders/s for 30s
  orderctl load -n 500 -prefix bench1 -hot-goods 42
`

type loadOptions struct {
	n           int
	goods       string
	hotGoods    int64
	spreadGoods int64
	lines       int
	rate        float64
	concurrency int
	batch       int
	prefix      string
	brokers     []string // for error messages
}

// runLoad is `orderctl load`.
func runLoad(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", loadHelp, &cfg)
	var o loadOptions
	fs.IntVar(&o.n, "n", 0, "number of orders to publish (required)")
	fs.StringVar(&o.goods, "goods", "hot", "hot: every order on goods -hot-goods; spread: random goods in 1..-spread-goods")
	fs.Int64Var(&o.hotGoods, "hot-goods", 16, "the goods of -goods hot")
	fs.Int64Var(&o.spreadGoods, "spread-goods", 10000, "the goods range of -goods spread")
	fs.IntVar(&o.lines, "lines", 1, "lines per order (distinct goods, 1 each)")
	fs.Float64Var(&o.rate, "rate", 0, "orders per second (0: as fast as possible)")
	fs.IntVar(&o.concurrency, "concurrency", 4, "batches in flight at once")
	fs.IntVar(&o.batch, "batch", 500, "most orders per publish call")
	fs.StringVar(&o.prefix, "prefix", "", "order id prefix (default load-<time>-<random>, new on every run)")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("load", "unexpected argument %q", pos[0])
	}
	if o.prefix == "" {
		o.prefix = defaultLoadPrefix(time.Now())
	}
	if err := o.validate(); err != nil {
		return usagef("load", "%v", err)
	}

	o.brokers = cfg.brokerList()
	pub := producer.New(o.brokers, producer.Options{Security: cfg.kafkaSecurity})
	defer pub.Close()
	var sent atomic.Int64
	start := time.Now()
	prog := startProgress(stderr, int64(o.n), &sent, start)
	err = publishLoad(ctx, pub, cfg.OrdersTopic, o, &sent)
	prog.stop()

	elapsed := time.Since(start)
	n := sent.Load()
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	if err != nil {
		fmt.Fprintf(stdout, "sent %d of %d orders to %s in %v before the failure\n", n, o.n, cfg.OrdersTopic, elapsed.Round(time.Millisecond))
		return err
	}
	fmt.Fprintf(stdout, "sent %d orders (%s-1 … %s-%d, %s) to %s in %v: %.0f orders/s\n",
		n, o.prefix, o.prefix, o.n, o.describeGoods(), cfg.OrdersTopic, elapsed.Round(time.Millisecond), rate)
	return nil
}

func (o loadOptions) validate() error {
	switch {
	case o.n < 1:
		return fmt.Errorf("-n must be at least 1 (the number of orders), got %d", o.n)
	case o.goods != "hot" && o.goods != "spread":
		return fmt.Errorf("-goods must be hot or spread, got %q", o.goods)
	case o.lines < 1 || o.lines > events.MaxLines:
		return fmt.Errorf("-lines must be in 1..%d, got %d", events.MaxLines, o.lines)
	case o.goods == "hot" && (o.hotGoods < 1 || o.hotGoods > 1<<62):
		return fmt.Errorf("-hot-goods must be a goods id ≥ 1, got %d", o.hotGoods)
	case o.goods == "spread" && o.spreadGoods < int64(o.lines):
		return fmt.Errorf("-spread-goods must be at least -lines (%d), got %d", o.lines, o.spreadGoods)
	case o.rate < 0:
		return fmt.Errorf("-rate must be ≥ 0, got %v", o.rate)
	case o.concurrency < 1:
		return fmt.Errorf("-concurrency must be at least 1, got %d", o.concurrency)
	case o.batch < 1:
		return fmt.Errorf("-batch must be at least 1, got %d", o.batch)
	}
	if _, err := parseOrderID(o.prefix + "-" + strconv.Itoa(o.n)); err != nil {
		return fmt.Errorf("-prefix %q: %v", o.prefix, err)
	}
	return nil
}

func (o loadOptions) describeGoods() string {
	if o.goods == "hot" {
		if o.lines == 1 {
			return fmt.Sprintf("hot goods %d", o.hotGoods)
		}
		return fmt.Sprintf("hot goods %d..%d", o.hotGoods, o.hotGoods+int64(o.lines)-1)
	}
	return fmt.Sprintf("%d line(s) spread over goods 1..%d", o.lines, o.spreadGoods)
}

func defaultLoadPrefix(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "load-" + now.Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// orderLines returns the lines of one generated order.
func (o loadOptions) orderLines() []events.Line {
	lines := make([]events.Line, 0, o.lines)
	if o.goods == "hot" {
		for i := range o.lines {
			lines = append(lines, events.Line{GoodsID: o.hotGoods + int64(i), Num: 1})
		}
		return lines
	}
	seen := make(map[int64]bool, o.lines)
	for len(lines) < o.lines {
		g := 1 + mrand.Int64N(o.spreadGoods)
		if !seen[g] {
			seen[g] = true
			lines = append(lines, events.Line{GoodsID: g, Num: 1})
		}
	}
	lines, _ = events.MergeLines(lines) // sorts them; nothing to merge
	return lines
}

// publishLoad publishes the orders of o: one goroutine generates batches (and
// paces them to o.rate), o.concurrency goroutines publish them. sent counts
// the acknowledged orders. The first failure stops everything.
func publishLoad(ctx context.Context, pub *producer.Publisher, topic string, o loadOptions, sent *atomic.Int64) error {
	size := o.batch
	if o.rate > 0 {
		// Small batches keep a paced run smooth: about 20 releases a second.
		size = max(1, min(o.batch, int(o.rate/20)))
	}
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []kafka.Message, o.concurrency)
	g.Go(func() error {
		defer close(batches)
		start := time.Now()
		for first := 0; first < o.n; first += size {
			if o.rate > 0 {
				release := start.Add(time.Duration(float64(first) / o.rate * float64(time.Second)))
				if err := sleepUntil(gctx, release); err != nil {
					return err
				}
			}
			msgs := make([]kafka.Message, 0, min(size, o.n-first))
			for i := first; i < o.n && i < first+size; i++ {
				m, err := orderMessage(topic, events.OrderPlaced{OrderID: fmt.Sprintf("%s-%d", o.prefix, i+1), Lines: o.orderLines()})
				if err != nil {
					return err
				}
				msgs = append(msgs, m)
			}
			select {
			case batches <- msgs:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range o.concurrency {
		g.Go(func() error {
			for msgs := range batches {
				pctx, cancel := context.WithTimeout(gctx, kafkaTimeout)
				err := pub.Publish(pctx, msgs...)
				cancel()
				if err != nil {
					return explainPublish(err, o.brokers, msgs)
				}
				sent.Add(int64(len(msgs)))
			}
			return nil
		})
	}
	return g.Wait()
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
