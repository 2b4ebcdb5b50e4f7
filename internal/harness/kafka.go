package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/kafkaconn"
)

// Bounds of the admin calls.
const (
	adminTimeout = 30 * time.Second // one metadata or offsets lookup, retries included
	retryEvery   = 100 * time.Millisecond
)

// Kafka is a cluster the harness talks to: its bootstrap brokers and how
// every connection is made (Security; nil: plaintext without SASL, what the
// package functions of the same names use). It is a value; copy it freely.
type Kafka struct {
	Brokers  []string
	Security *kafkaconn.Security
}

// newClient returns an admin client of its own, and its transport, whose idle
// connections the caller closes when done (CloseIdleConnections).
func (k Kafka) newClient() (*kafka.Client, *kafka.Transport) {
	t := k.Security.Transport()
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Timeout: 10 * time.Second, Transport: t}, t
}

// partitions returns the partition ids of topic, sorted. A missing topic is an
// error wrapping kafka.UnknownTopicOrPartition.
func partitions(ctx context.Context, client *kafka.Client, brokers []string, topic string) ([]int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of topic %s from %v: %w", topic, brokers, err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("metadata of topic %s: got %d topics", topic, len(md.Topics))
	}
	if err := md.Topics[0].Error; err != nil {
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic %s does not exist on %v: %w", topic, brokers, err)
		}
		return nil, fmt.Errorf("metadata of topic %s: %w", topic, err)
	}
	ids := make([]int, 0, len(md.Topics[0].Partitions))
	for _, p := range md.Topics[0].Partitions {
		ids = append(ids, p.ID)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	slices.Sort(ids)
	return ids, nil
}

// EndOffsets returns, per partition of topic, its current end: the offset the
// next message published to it will get (the sum over partitions of a fresh
// topic is its message count). It retries the errors a broker gives for a
// moment after a topic is created or a leader moves, for at most 30s within
// ctx. A missing topic is an error wrapping kafka.UnknownTopicOrPartition.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	return Kafka{Brokers: brokers}.EndOffsets(ctx, topic)
}

// EndOffsets is the package's EndOffsets on k. A cluster that refuses the
// connection (kafkaconn.Refused) fails it at once.
func (k Kafka) EndOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	client, transport := k.newClient()
	defer transport.CloseIdleConnections()
	ids, err := partitions(ctx, client, k.Brokers, topic)
	if err != nil {
		return nil, err
	}
	reqs := make([]kafka.OffsetRequest, len(ids))
	for i, id := range ids {
		reqs[i] = kafka.LastOffsetOf(id)
	}
	for {
		ends, err := listEnds(ctx, client, topic, reqs)
		if err == nil {
			return ends, nil
		}
		// Heals by waiting: "not leader" and the like right after a topic is
		// created. Anything else is reported at once.
		var kerr kafka.Error
		if !errors.As(err, &kerr) || !kerr.Temporary() {
			return nil, err
		}
		t := time.NewTimer(retryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func listEnds(ctx context.Context, client *kafka.Client, topic string, reqs []kafka.OffsetRequest) (map[int]int64, error) {
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("end offsets of topic %s: %w", topic, err)
	}
	ends := make(map[int]int64, len(reqs))
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
