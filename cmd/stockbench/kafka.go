package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/producer"
	"golang.org/x/sync/errgroup"
)

// topics are one run's own topic names.
type topics struct {
	Orders, Cancelled, Events, DLQ string
}

func newTopics(id string) topics {
	return topics{Orders: id + ".orders.placed", Cancelled: id + ".orders.cancelled", Events: id + ".stock.events", DLQ: id + ".orders.dlq"}
}

func (t topics) all() []string { return []string{t.Orders, t.Cancelled, t.Events, t.DLQ} }

// kafkaClient is the admin client of the benchmark.
func kafkaClient(brokers []string) *kafka.Client {
	return &kafka.Client{
		Addr:      kafka.TCP(brokers...),
		Timeout:   10 * time.Second,
		Transport: &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
	}
}

func deleteTopics(ctx context.Context, c *kafka.Client, names ...string) error {
	res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	var errs []error
	for name, e := range res.Errors {
		if e != nil && !errors.Is(e, kafka.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", name, e))
		}
	}
	return errors.Join(errs...)
}

// orderWriter is the load generator's producer: acks=all, keyed by order_id
// through the same hash balancer as the worker's publisher, large batches.
func orderWriter(brokers []string, batchSize int, batchTimeout time.Duration) *kafka.Writer {
	return &kafka.Writer{
		Addr:                   kafka.TCP(brokers...),
		Balancer:               &kafka.Hash{},
		RequiredAcks:           kafka.RequireAll,
		BatchSize:              batchSize,
		BatchBytes:             16 << 20,
		BatchTimeout:           batchTimeout,
		WriteTimeout:           30 * time.Second,
		ReadTimeout:            30 * time.Second,
		AllowAutoTopicCreation: false,
		Transport:              &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
	}
}

// orderMessages encodes orders as order-placed messages on topic.
func orderMessages(topic string, orders []events.OrderPlaced) ([]kafka.Message, error) {
	out := make([]kafka.Message, len(orders))
	for i, o := range orders {
		b, err := events.EncodeOrderPlaced(o)
		if err != nil {
			return nil, fmt.Errorf("encode order %s: %w", o.OrderID, err)
		}
		out[i] = kafka.Message{Topic: topic, Key: []byte(o.OrderID), Value: b}
	}
	return out, nil
}

// produceAll writes msgs as fast as it can: chunks of chunk messages from
// concurrency goroutines, each write waiting for acks=all. progress, when set,
// is called with the messages acknowledged so far.
func produceAll(ctx context.Context, w *kafka.Writer, msgs []kafka.Message, chunk, concurrency int, progress func(int)) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	var mu sync.Mutex
	done := 0
	for start := 0; start < len(msgs); start += chunk {
		part := msgs[start:min(start+chunk, len(msgs))]
		g.Go(func() error {
			if err := w.WriteMessages(ctx, part...); err != nil {
				return fmt.Errorf("produce %d orders: %w", len(part), err)
			}
			mu.Lock()
			done += len(part)
			d := done
			mu.Unlock()
			if progress != nil {
				progress(d)
			}
			return nil
		})
	}
	return g.Wait()
}

// producePaced writes msgs at r messages a second, each handed to the writer
// at its slot in the schedule; sent[i] is when msgs[i] was handed over, the
// start of its latency. A write that is slow does not hold the schedule up
// (up to 256 writes are in flight); the offered rate actually achieved is
// returned.
func producePaced(ctx context.Context, w *kafka.Writer, msgs []kafka.Message, r float64, sent []time.Time) (float64, error) {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(256)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / r)
	for i := 0; i < len(msgs); {
		now := time.Now()
		due := min(int(float64(now.Sub(start))/float64(interval))+1, len(msgs))
		if due > i {
			part := msgs[i:due]
			for j := i; j < due; j++ {
				sent[j] = now
			}
			g.Go(func() error {
				if err := w.WriteMessages(ctx, part...); err != nil {
					return fmt.Errorf("produce %d orders: %w", len(part), err)
				}
				return nil
			})
			i = due
		}
		if i >= len(msgs) {
			break
		}
		t := time.NewTimer(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, errors.Join(ctx.Err(), g.Wait())
		case <-t.C:
		}
	}
	elapsed := time.Since(start)
	if err := g.Wait(); err != nil {
		return 0, err
	}
	if len(msgs) <= 1 {
		return r, nil
	}
	// n messages over n-1 intervals.
	return float64(len(msgs)-1) / elapsed.Seconds(), nil
}

// collector reads a run's outcome topic from its start (harness.Tail: one
// reader per partition, no consumer group) and records when each order's
// first outcome was consumed. Its one goroutine is awaited by close, which the
// caller must call.
type collector struct {
	tail   *harness.Tail
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	msgs   []outcomeMsg
	first  map[string]time.Time // order_id → first outcome consumed
	counts map[string]int       // order id prefix ("t", "l", "w") → orders answered
	last   map[string]time.Time // prefix → latest first outcome
	err    error                // the reading failed (reported by progress)
}

// startCollector starts reading topic. Cancelling ctx stops the reading, as
// close does.
func startCollector(ctx context.Context, brokers []string, topic string) (*collector, error) {
	tl, err := harness.OpenTail(ctx, brokers, topic, harness.FromStart)
	if err != nil {
		return nil, fmt.Errorf("read outcomes: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	c := &collector{tail: tl, cancel: cancel, first: map[string]time.Time{}, counts: map[string]int{}, last: map[string]time.Time{}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			// at is when the tail's reader got the message from the broker.
			m, at, err := tl.NextAt(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.mu.Lock()
					c.err = err
					c.mu.Unlock()
				}
				return
			}
			c.add(m, at)
		}
	}()
	return c, nil
}

func (c *collector) add(m kafka.Message, at time.Time) {
	typ := ""
	for _, h := range m.Headers {
		if h.Key == producer.HeaderType {
			typ = string(h.Value)
		}
	}
	key := string(m.Key)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, outcomeMsg{Key: key, Type: typ, Value: m.Value, At: at})
	if _, seen := c.first[key]; !seen {
		c.first[key] = at
		prefix, _, _ := strings.Cut(key, "-")
		c.counts[prefix]++
		if at.After(c.last[prefix]) {
			c.last[prefix] = at
		}
	}
}

// progress returns how many orders with prefix have an outcome, the time of
// the latest first outcome among them, and a reader failure if any.
func (c *collector) progress(prefix string) (int, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[prefix], c.last[prefix], c.err
}

// firstSeen returns when the first outcome of each order id was consumed.
func (c *collector) firstSeen(ids []string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, len(ids))
	for i, id := range ids {
		out[i] = c.first[id]
	}
	return out
}

// messages returns a copy of everything read so far.
func (c *collector) messages() []outcomeMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// close stops the reading and waits for it.
func (c *collector) close() {
	c.cancel()
	c.wg.Wait()
	_ = c.tail.Close() // kafka-go's Reader.Close has nothing to report
}

// warmupOrders returns one order per partition of the orders topic (keys
// chosen with the workers' hash balancer), each taking one unit of
// warmupGoods, so that answering all of them proves every partition has a
// working owner.
func warmupOrders(partitions int) []events.OrderPlaced {
	var h kafka.Hash
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	covered := map[int]bool{}
	var out []events.OrderPlaced
	for i := 0; len(covered) < partitions && i < 100_000; i++ {
		id := fmt.Sprintf("w-%d", i)
		p := h.Balance(kafka.Message{Key: []byte(id)}, parts...)
		if !covered[p] {
			covered[p] = true
			out = append(out, events.OrderPlaced{OrderID: id, Lines: []events.Line{{GoodsID: warmupGoods, Num: 1}}})
		}
	}
	return out
}
