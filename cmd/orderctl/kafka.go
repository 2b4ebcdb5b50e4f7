package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
)

// newClient returns a kafka.Client for admin calls on k and the transport to
// close (CloseIdleConnections) when done with it.
func newClient(k harness.Kafka) (*kafka.Client, *kafka.Transport) {
	transport := k.Security.Transport()
	return &kafka.Client{Addr: kafka.TCP(k.Brokers...), Timeout: kafkaTimeout, Transport: transport}, transport
}

// openTail starts reading every partition of topic without a consumer group
// (harness.OpenTail): at its current end (fromStart false: only messages
// published after openTail returns are seen, whatever the partition) or at its
// beginning. The end offsets are resolved before openTail returns, so a caller
// can publish and then wait for the answer without a race. The caller closes
// the tail.
func openTail(ctx context.Context, k harness.Kafka, topic string, fromStart bool) (*harness.Tail, error) {
	from := harness.FromEnd
	if fromStart {
		from = harness.FromStart
	}
	t, err := k.OpenTail(ctx, topic, from)
	if err != nil {
		return nil, explainTopic(err, k, topic)
	}
	return t, nil
}

// startOffsets returns, per partition of topic, where a reader starting at its
// beginning (fromStart) or at its current end starts. The ends of a fresh
// topic add up to the messages it holds.
func startOffsets(ctx context.Context, k harness.Kafka, topic string, fromStart bool) (map[int]int64, error) {
	ends, err := k.EndOffsets(ctx, topic)
	if err != nil {
		return nil, explainTopic(err, k, topic)
	}
	if fromStart {
		for p := range ends {
			ends[p] = kafka.FirstOffset
		}
	}
	return ends, nil
}

// explainTopic adds the usual cause to a missing topic: orderctl creates no
// topics; a stockworker does at start. A cluster that refuses the connection
// says what to check (kafkaconn.Security.Explain).
func explainTopic(err error, k harness.Kafka, topic string) error {
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		return fmt.Errorf("topic %s does not exist on %v (a stockworker creates it at start)", topic, k.Brokers)
	}
	return k.Security.Explain(err)
}
