package producer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/kafkaconn"
)

// Header names used on published messages.
const (
	HeaderType            = "type"
	HeaderError           = "error"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
	// HeaderKind says why a message is on the dead-letter topic: KindUndecodable
	// (its bytes are not an order) or KindPoison (handling it kept failing).
	HeaderKind = "dead-letter-kind"
	// HeaderAttempts counts the attempts made at a poison message.
	HeaderAttempts = "attempts"
	// HeaderTruncatedKey and HeaderTruncatedValue hold the original size in
	// bytes of a key or value cut to fit MaxDeadLetterBytes.
	HeaderTruncatedKey   = "truncated-key-bytes"
	HeaderTruncatedValue = "truncated-value-bytes"
)

// Dead-letter kinds (HeaderKind).
const (
	KindUndecodable = "undecodable"
	KindPoison      = "poison"
)

// MaxDeadLetterBytes bounds a dead letter (key, value and headers): below the
// broker's default message.max.bytes (1,048,588 for the record batch) and the
// writer's batch limit, so a copy of a message close to 1 MB cannot fail the
// publish of every answer it travels with.
const MaxDeadLetterBytes = 1_000_000

// maxErrorHeader bounds the error header.
const maxErrorHeader = 2048

// Options tune a Publisher. The zero value gives the documented defaults.
type Options struct {
	// BatchTimeout is how long the writer waits to fill a batch. kafka-go's
	// default of 1s would add a second to every synchronous write; every
	// Publish call hands over all its messages at once, so little waiting is
	// needed. Default 500µs.
	BatchTimeout time.Duration
	// WriteTimeout bounds one produce request. Default 10s.
	WriteTimeout time.Duration
	// Attempts is how many times the writer tries a partition's batch
	// before Publish returns its error (kafka.WriteErrors says which
	// messages failed), with 100ms–1s between attempts. Default kafka-go's
	// 10, which can hold a Publish call for several seconds while a
	// partition has no leader; a caller that retries itself can ask for
	// fewer.
	Attempts int
	// Partitioner maps each message key to a partition. Default Murmur2, the
	// Java client's rule, so Java and Kafka Streams consumers find a key's
	// events on the partition they compute. Names from configuration go
	// through ParsePartitioner; any other value is taken as Murmur2.
	Partitioner Partitioner
	// Security is how the writer connects (TLS, SASL). Default nil:
	// plaintext without SASL.
	Security *kafkaconn.Security
}

// Publisher writes messages to any topic (each message names its own) with
// acks=all, placed by the hash of the message key (Options.Partitioner), so
// one order's events always land on one partition. It is safe for concurrent
// use.
type Publisher struct {
	w         *kafka.Writer
	transport *kafka.Transport
	sec       *kafkaconn.Security
	placer    kafka.Balancer // the writer's rule, an instance of its own (Partition)

	mu         sync.Mutex
	partitions map[string]topicPartitions // topic → its partition count, for Partition
	reads      sync.WaitGroup             // background reads of partition counts
	closing    context.Context            // ends the reads when Close is called
	close      context.CancelFunc
}

// topicPartitions is a topic's partition count as last read, when to read it
// again, and whether a read is under way.
type topicPartitions struct {
	n       int
	next    time.Time
	reading bool
}

// A topic's partition count is read again (in the background) after
// partitionsTTL, or after partitionsRetry when the read failed.
const (
	partitionsTTL   = 15 * time.Second
	partitionsRetry = 5 * time.Second
)

// New returns a Publisher for brokers.
func New(brokers []string, opts Options) *Publisher {
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = 500 * time.Microsecond
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	// The transport learns where partitions moved only by refreshing its
	// metadata cache (kafka-go does not refresh on NOT_LEADER errors); a 2s
	// TTL instead of the default 6s lets writes follow a new leader sooner.
	transport := opts.Security.Transport()
	transport.MetadataTTL = 2 * time.Second
	closing, closeReads := context.WithCancel(context.Background())
	return &Publisher{transport: transport, sec: opts.Security, placer: opts.Partitioner.balancer(), partitions: map[string]topicPartitions{},
		closing: closing, close: closeReads, w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Balancer:     opts.Partitioner.balancer(),
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: opts.BatchTimeout,
			// Larger than any dead letter (MaxDeadLetterBytes): the writer
			// refuses a whole call with a message beyond it.
			BatchBytes:   1 << 20,
			WriteTimeout: opts.WriteTimeout,
			ReadTimeout:  opts.WriteTimeout,
			MaxAttempts:  opts.Attempts, // 0: kafka-go's default
			// Topics are created by EnsureTopics; a typo must fail, not create one.
			AllowAutoTopicCreation: false,
			Transport:              transport,
		}}
}

// Publish writes msgs and returns once the broker acknowledged all of them
// (acks=all), or the first error. Cancelling ctx abandons the write; the
// messages may or may not have been written. A cluster that refuses the
// connection for good (kafkaconn.Refused: credentials, certificate) fails
// with a *kafkaconn.RefusedError that says what to check.
func (p *Publisher) Publish(ctx context.Context, msgs ...kafka.Message) error {
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return p.sec.Explain(fmt.Errorf("producer: publish %d message(s): %w", len(msgs), err))
	}
	return nil
}

// Partition returns the partition of msg's topic that Publish writes msg to,
// by the same rule as the writer, and true; false when that is not known: a
// message without a key (placed at random), or a topic whose partition count
// has not been read yet. It never waits for the cluster: the count is read
// in the background on first use and again after 15 s (5 s after a failed
// read).
func (p *Publisher) Partition(msg kafka.Message) (int, bool) {
	if msg.Key == nil {
		return 0, false
	}
	p.mu.Lock()
	tp := p.partitions[msg.Topic]
	if !tp.reading && !time.Now().Before(tp.next) {
		tp.reading = true
		p.partitions[msg.Topic] = tp
		p.reads.Add(1)
		go p.readPartitions(msg.Topic)
	}
	p.mu.Unlock()
	if tp.n <= 0 {
		return 0, false
	}
	ids := make([]int, tp.n)
	for i := range ids {
		ids[i] = i
	}
	return p.placer.Balance(msg, ids...), true
}

// readPartitions reads topic's partition count from the cluster; a failed
// read keeps the count known before and is tried again on the next use.
func (p *Publisher) readPartitions(topic string) {
	defer p.reads.Done()
	ctx, cancel := context.WithTimeout(p.closing, 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: p.w.Addr, Transport: p.transport}
	n := 0
	res, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err == nil && len(res.Topics) == 1 && res.Topics[0].Error == nil {
		n = len(res.Topics[0].Partitions)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tp := p.partitions[topic]
	tp.reading = false
	if n > 0 {
		tp.n, tp.next = n, time.Now().Add(partitionsTTL)
	} else {
		tp.next = time.Now().Add(partitionsRetry)
	}
	p.partitions[topic] = tp
}

// Close flushes and closes the writer and its connections. It is safe to call
// more than once.
func (p *Publisher) Close() error {
	p.close()
	p.reads.Wait()
	err := p.w.Close()
	p.transport.CloseIdleConnections()
	return err
}

// Outcome is the message for an outcome event: keyed by order_id, with the
// event type in the "type" header.
func Outcome(topic, orderID, eventType string, payload []byte) kafka.Message {
	return kafka.Message{
		Topic:   topic,
		Key:     []byte(orderID),
		Value:   payload,
		Headers: []kafka.Header{{Key: HeaderType, Value: []byte(eventType)}},
	}
}

// DeadLetter is the message that parks src on the dead-letter topic because
// its bytes are not an order: the original key and value, with the error and
// the source position in headers (see Letter).
func DeadLetter(topic string, src kafka.Message, cause error) kafka.Message {
	return Letter(topic, src, KindUndecodable, cause, 0)
}

// Letter is the dead letter of src: the original key and value with headers
// error, source-topic, source-partition, source-offset, dead-letter-kind and,
// for poison, attempts. A letter larger than MaxDeadLetterBytes keeps its
// headers and as much of the key and value as fits; the headers
// truncated-key-bytes / truncated-value-bytes then give the original sizes.
func Letter(topic string, src kafka.Message, kind string, cause error, attempts int) kafka.Message {
	msg := kafka.Message{
		Topic: topic,
		Key:   src.Key,
		Value: src.Value,
		Headers: []kafka.Header{
			{Key: HeaderError, Value: clip([]byte(cause.Error()), maxErrorHeader)},
			{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(src.Partition))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
			{Key: HeaderKind, Value: []byte(kind)},
		},
	}
	if attempts > 0 {
		msg.Headers = append(msg.Headers, kafka.Header{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))})
	}
	// Room for key and value: the limit less the headers (with room for the
	// two truncation headers) and the record's own overhead.
	room := MaxDeadLetterBytes - 256
	for _, h := range msg.Headers {
		room -= len(h.Key) + len(h.Value) + 10
	}
	if len(msg.Key)+len(msg.Value) <= room {
		return msg
	}
	if keyRoom := room / 4; len(msg.Key) > keyRoom {
		msg.Headers = append(msg.Headers, kafka.Header{Key: HeaderTruncatedKey, Value: []byte(strconv.Itoa(len(msg.Key)))})
		msg.Key = msg.Key[:keyRoom]
	}
	if valueRoom := room - len(msg.Key); len(msg.Value) > valueRoom {
		msg.Headers = append(msg.Headers, kafka.Header{Key: HeaderTruncatedValue, Value: []byte(strconv.Itoa(len(msg.Value)))})
		msg.Value = msg.Value[:valueRoom]
	}
	return msg
}

// Shrink returns letter with less of the original in it, for a dead-letter
// topic that refused it as too large or invalid: first without its value, then
// without its key as well (the truncation headers keep the original sizes).
// ok is false when there is nothing left to drop.
func Shrink(letter kafka.Message) (kafka.Message, bool) {
	cut := func(header string, size int) {
		if _, ok := Header(letter, header); !ok {
			letter.Headers = append(letter.Headers[:len(letter.Headers):len(letter.Headers)],
				kafka.Header{Key: header, Value: []byte(strconv.Itoa(size))})
		}
	}
	switch {
	case len(letter.Value) > 0:
		cut(HeaderTruncatedValue, len(letter.Value))
		letter.Value = nil
	case len(letter.Key) > 0:
		cut(HeaderTruncatedKey, len(letter.Key))
		letter.Key = nil
	default:
		return letter, false
	}
	return letter, true
}

// Header returns the value of the first header called key, and whether there is one.
func Header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// clip returns b cut to at most n bytes, marked as cut.
func clip(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append(b[:n-len("…"):n-len("…")], "…"...)
}

// PerMessage reports whether a publish failed because of one message itself
// (too large, or a record the broker refuses), which no wait heals, rather than
// because of the cluster (a broker, leader or coordinator away, a topic
// missing or not authorised), which waiting may heal and which fails every
// message alike.
func PerMessage(err error) bool {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && PerMessage(e) {
				return true
			}
		}
		return false
	}
	var tooLarge kafka.MessageTooLargeError
	// InvalidMessage (a CRC mismatch) is left out: the bytes were damaged on
	// the way, and sending them again heals it.
	return errors.As(err, &tooLarge) || errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) ||
		errors.Is(err, kafka.InvalidRecord) || errors.Is(err, kafka.InvalidMessageSize)
}
