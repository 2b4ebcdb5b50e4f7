package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopics creates the topics that do not exist yet, each with partitions
// partitions and replication factor replicas; replicas 0 (or less) takes the
// cluster's default.replication.factor. Existing topics are left as they are
// (their partition count and replication are not changed).
func EnsureTopics(ctx context.Context, brokers []string, partitions, replicas int, topics ...string) error {
	if len(brokers) == 0 {
		return errors.New("producer: no brokers")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second, Transport: transport}
	if replicas <= 0 {
		replicas = -1 // CreateTopics v4 and later: the broker's default
	}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replicas})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("producer: create topics %v on %v: %w", topics, brokers, err)
	}
	for topic, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("producer: create topic %s: %w", topic, err)
		}
	}
	// A new topic's leaders are elected asynchronously; wait until every
	// partition has one, so the first produce does not fail.
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
		if err == nil && allLed(md, topics) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("producer: topics %v have no leaders yet: %w", topics, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLed(md *kafka.MetadataResponse, want []string) bool {
	seen := 0
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false
			}
		}
		seen++
	}
	return seen == len(want)
}
