package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/kafkaconn"
)

// EnsureTopics creates the topics that do not exist yet, each with partitions
// partitions and replication factor replicas; replicas 0 (or less) takes the
// cluster's default.replication.factor. Existing topics are left as they are
// (their partition count and replication are not changed). It connects in
// plaintext; EnsureTopicsWith takes the security.
func EnsureTopics(ctx context.Context, brokers []string, partitions, replicas int, topics ...string) error {
	return EnsureTopicsWith(ctx, nil, brokers, partitions, replicas, topics...)
}

// EnsureTopicsWith is EnsureTopics over connections made with sec (nil:
// plaintext). A cluster that refuses the connection for good
// (kafkaconn.Refused: credentials, certificate) fails it at once with a
// *kafkaconn.RefusedError that says what to check; everything is bounded by
// 30s.
func EnsureTopicsWith(ctx context.Context, sec *kafkaconn.Security, brokers []string, partitions, replicas int, topics ...string) error {
	if len(brokers) == 0 {
		return errors.New("producer: no brokers")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	transport := sec.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second, Transport: transport}
	// Metadata first: a refused connection surfaces here with its cause,
	// where CreateTopics would only say that no broker is available.
	if _, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics}); err != nil {
		return sec.Explain(fmt.Errorf("producer: connect to %v over %s: %w", brokers, sec, err))
	}
	if replicas <= 0 {
		replicas = -1 // CreateTopics v4 and later: the broker's default
	}
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: replicas})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return sec.Explain(fmt.Errorf("producer: create topics %v on %v: %w", topics, brokers, err))
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
		if kafkaconn.Refused(err) {
			return sec.Explain(fmt.Errorf("producer: metadata of topics %v: %w", topics, err))
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

// MissingTopics returns those of topics that do not exist on the cluster, in
// their order (empty names are ignored). It connects in plaintext;
// MissingTopicsWith takes the security.
func MissingTopics(ctx context.Context, brokers []string, topics ...string) ([]string, error) {
	return MissingTopicsWith(ctx, nil, brokers, topics...)
}

// MissingTopicsWith is MissingTopics over connections made with sec (nil:
// plaintext). A refused connection (kafkaconn.Refused) is a
// *kafkaconn.RefusedError that says what to check.
func MissingTopicsWith(ctx context.Context, sec *kafkaconn.Security, brokers []string, topics ...string) ([]string, error) {
	if len(brokers) == 0 {
		return nil, errors.New("producer: no brokers")
	}
	var names []string
	for _, t := range topics {
		if t != "" {
			names = append(names, t)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	transport := sec.Transport()
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second, Transport: transport}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, sec.Explain(fmt.Errorf("producer: read the metadata of %v on %v over %s: %w", names, brokers, sec, err))
	}
	known := map[string]bool{}
	for _, t := range md.Topics {
		switch {
		case t.Error == nil:
			known[t.Name] = true
		case !errors.Is(t.Error, kafka.UnknownTopicOrPartition):
			return nil, fmt.Errorf("producer: topic %s: %w", t.Name, t.Error)
		}
	}
	var missing []string
	for _, t := range names {
		if !known[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}
