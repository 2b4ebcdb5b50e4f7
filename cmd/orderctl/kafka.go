package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// newClient returns a kafka.Client for admin calls and the transport to close
// (CloseIdleConnections) when done with it.
func newClient(brokers []string) (*kafka.Client, *kafka.Transport) {
	transport := &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: kafkaTimeout, Transport: transport}, transport
}

// tail reads every partition of one topic without a consumer group (nothing is
// committed, no group is joined), with one kafka.Reader per partition.
// Messages of different partitions interleave; one order's events share a
// partition (they are keyed by order_id), so they arrive in order.
//
// Next blocks for the next message; Close stops the readers and waits for
// their goroutines. A tail is used by one goroutine.
type tail struct {
	msgs    chan kafka.Message
	errs    chan error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	readers []*kafka.Reader
	once    sync.Once
}

// openTail starts reading topic at its current end (fromStart false: only
// messages published after openTail returns are seen, whatever the partition)
// or at its beginning. The end offsets are resolved before openTail returns,
// so a caller can publish and then wait for the answer without a race.
func openTail(ctx context.Context, brokers []string, topic string, fromStart bool) (*tail, error) {
	starts, err := startOffsets(ctx, brokers, topic, fromStart)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.Background())
	t := &tail{msgs: make(chan kafka.Message), errs: make(chan error, len(starts)), cancel: cancel}
	for partition, offset := range starts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:         brokers,
			Topic:           topic,
			Partition:       partition,
			MinBytes:        1,
			MaxBytes:        10 << 20,
			MaxWait:         250 * time.Millisecond,
			ReadLagInterval: -1,
		})
		if err := r.SetOffset(offset); err != nil {
			r.Close()
			t.Close()
			return nil, fmt.Errorf("read %s partition %d from offset %d: %w", topic, partition, offset, err)
		}
		t.readers = append(t.readers, r)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			for {
				m, err := r.ReadMessage(rctx)
				if err != nil {
					if rctx.Err() == nil {
						t.errs <- fmt.Errorf("read %s partition %d: %w", topic, partition, err)
					}
					return
				}
				select {
				case t.msgs <- m:
				case <-rctx.Done():
					return
				}
			}
		}()
	}
	return t, nil
}

// startOffsets returns, per partition of topic, the offset to read from.
func startOffsets(ctx context.Context, brokers []string, topic string, fromStart bool) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	client, transport := newClient(brokers)
	defer transport.CloseIdleConnections()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %s from %v: %w", topic, brokers, err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("metadata of topic %s: got %d topics", topic, len(md.Topics))
	}
	if err := md.Topics[0].Error; err != nil {
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic %s does not exist on %v (a stockworker creates it at start)", topic, brokers)
		}
		return nil, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	starts := map[int]int64{}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		starts[p.ID] = kafka.FirstOffset
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	if fromStart {
		return starts, nil
	}
	// Right after a topic is created (or a leader moves) the broker may answer
	// "not leader" for a moment: retry those until the deadline.
	for {
		ends, err := endOffsets(ctx, client, topic, reqs)
		if err == nil {
			maps.Copy(starts, ends)
			break
		}
		var kerr kafka.Error
		if !errors.As(err, &kerr) || !kerr.Temporary() {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return starts, nil
}

func endOffsets(ctx context.Context, client *kafka.Client, topic string, reqs []kafka.OffsetRequest) (map[int]int64, error) {
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("end offsets of topic %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("end offset of %s partition %d: %w", topic, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	if len(ends) != len(reqs) {
		return nil, fmt.Errorf("end offsets of topic %s: %d of %d partitions answered", topic, len(ends), len(reqs))
	}
	return ends, nil
}

// Next returns the next message of any partition. It returns ctx's error when
// ctx ends first, and a reader's error if one fails.
func (t *tail) Next(ctx context.Context) (kafka.Message, error) {
	select {
	case m := <-t.msgs:
		return m, nil
	case err := <-t.errs:
		return kafka.Message{}, err
	case <-ctx.Done():
		return kafka.Message{}, ctx.Err()
	}
}

// Close stops every reader and waits for their goroutines. It is idempotent.
func (t *tail) Close() error {
	var errs []error
	t.once.Do(func() {
		t.cancel()
		for _, r := range t.readers {
			errs = append(errs, r.Close())
		}
		t.wg.Wait()
	})
	return errors.Join(errs...)
}
