package producer

import (
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Partitioner names the rule that maps a message key to one of a topic's
// partitions. Every rule sends one key to one partition, so one order's
// events stay in order; they differ in which partition that is, which matters
// to consumers that join topics by key (Kafka Streams) or compute partitions
// themselves.
type Partitioner string

const (
	// Murmur2 is the Java client's partitioner for keyed messages (and Kafka
	// Streams', and librdkafka's "murmur2_random"):
	// toPositive(murmur2(key)) % partitions, where toPositive clears the sign
	// bit. A message without a key (nil, as a dead letter of a keyless message
	// has) goes to a random partition; the Java client would pick a sticky
	// one. kafka-go's Murmur2Balancer with Consistent false.
	Murmur2 Partitioner = "murmur2"
	// FNV1a is kafka-go's Hash balancer (Sarama's default): FNV-1a of the key
	// as an int32, modulo the partitions, sign dropped; a message without a key
	// goes round robin. stockworker used it before murmur2 became the default:
	// it keeps the events of orders in flight on their partitions across an
	// upgrade.
	FNV1a Partitioner = "fnv1a"
)

// Partitioners returns the names ParsePartitioner accepts, the default first.
func Partitioners() []string { return []string{string(Murmur2), string(FNV1a)} }

// ParsePartitioner returns the partitioner called name.
func ParsePartitioner(name string) (Partitioner, error) {
	switch p := Partitioner(name); p {
	case Murmur2, FNV1a:
		return p, nil
	}
	return "", fmt.Errorf("producer: partitioner %q is not one of: %s", name, strings.Join(Partitioners(), ", "))
}

// Partition returns the partition of key among partitions partitions (ids 0
// to partitions-1), as a Publisher using p writes it. key must not be nil (a
// keyless message has no fixed partition); partitions must be positive.
func (p Partitioner) Partition(key []byte, partitions int) int {
	if key == nil {
		key = []byte{}
	}
	ids := make([]int, partitions)
	for i := range ids {
		ids[i] = i
	}
	return p.balancer().Balance(kafka.Message{Key: key}, ids...)
}

// balancer is the kafka-go balancer of p; the zero value is Murmur2.
func (p Partitioner) balancer() kafka.Balancer {
	if p == FNV1a {
		return &kafka.Hash{}
	}
	// Consistent false: keyless messages spread at random rather than all
	// onto one partition; keyed messages (every outcome) are hashed either way.
	return &kafka.Murmur2Balancer{}
}
