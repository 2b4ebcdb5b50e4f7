package harness_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
	"github.com/twmb/franz-go/pkg/kfake"
)

// topic creates a topic of its own with partitions partitions on the real
// broker, deleted when the test ends.
func topic(t *testing.T, partitions int) (brokers []string, name string) {
	t.Helper()
	brokers = testsvc.KafkaBrokers()
	testsvc.Require(t, "Kafka", brokers[0])
	name = harness.Unique("harness-test-")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := producer.EnsureTopics(ctx, brokers, partitions, 1, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		transport := &kafka.Transport{}
		defer transport.CloseIdleConnections()
		c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
		c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{name}}) //nolint:errcheck // best effort
	})
	return brokers, name
}

// publish writes one message per key, key "p<N>-..." to partition N.
func publish(t *testing.T, brokers []string, topic string, keys ...string) {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Transport: transport, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return int(m.Key[1] - '0') })}
	defer w.Close()
	msgs := make([]kafka.Message, len(keys))
	for i, k := range keys {
		msgs[i] = kafka.Message{Key: []byte(k), Value: []byte("v-" + k)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// read returns the keys of the next n messages.
func read(t *testing.T, tl *harness.Tail, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	for range n {
		m, err := tl.Next(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", keys, err)
		}
		keys = append(keys, string(m.Key))
	}
	slices.Sort(keys)
	return keys
}

func TestTailFromStartReadsEveryPartition(t *testing.T) {
	t.Parallel()
	brokers, name := topic(t, 3)
	publish(t, brokers, name, "p0-a", "p1-b", "p2-c", "p2-d")
	tl, err := harness.OpenTail(context.Background(), brokers, name, harness.FromStart)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	if got := read(t, tl, 4); strings.Join(got, " ") != "p0-a p1-b p2-c p2-d" {
		t.Fatalf("read %v", got)
	}
}

// The end is resolved before OpenTail returns: what was there before is never
// read, what is published right after always is.
func TestTailFromEndSeesOnlyWhatComesAfter(t *testing.T) {
	t.Parallel()
	brokers, name := topic(t, 3)
	publish(t, brokers, name, "p0-old", "p1-old", "p2-old")
	ends, err := harness.EndOffsets(context.Background(), brokers, name)
	if err != nil || len(ends) != 3 || ends[0]+ends[1]+ends[2] != 3 {
		t.Fatalf("end offsets %v, %v", ends, err)
	}
	tl, err := harness.OpenTail(context.Background(), brokers, name, harness.FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	publish(t, brokers, name, "p0-new", "p1-new", "p2-new")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	for range 3 {
		m, at, err := tl.NextAt(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(before) || at.After(time.Now()) {
			t.Fatalf("%s arrived at %v, published after %v", m.Key, at, before)
		}
		keys = append(keys, string(m.Key))
	}
	slices.Sort(keys)
	if strings.Join(keys, " ") != "p0-new p1-new p2-new" {
		t.Fatalf("read %v", keys)
	}
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tl.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := tl.Next(ctx); !errors.Is(err, harness.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestTailNextReturnsTheCause(t *testing.T) {
	t.Parallel()
	brokers, name := topic(t, 1)
	tl, err := harness.OpenTail(context.Background(), brokers, name, harness.FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := tl.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next = %v", err)
	}
	why := errors.New("a worker died")
	cctx, ccancel := context.WithCancelCause(context.Background())
	ccancel(why)
	if _, err := tl.Next(cctx); !errors.Is(err, why) {
		t.Fatalf("Next = %v", err)
	}
}

func TestTailOfAMissingTopic(t *testing.T) {
	t.Parallel()
	brokers := testsvc.KafkaBrokers()
	testsvc.Require(t, "Kafka", brokers[0])
	for _, from := range []harness.From{harness.FromStart, harness.FromEnd} {
		_, err := harness.OpenTail(context.Background(), brokers, harness.Unique("no-such-topic-"), from)
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("from %d: err = %v", from, err)
		}
	}
}

// When the broker goes away every partition's reader fails at about the same
// time: Next reports the first failure, again on every call, and nothing
// races (run with -race). An in-process broker is the one that can be killed.
func TestTailReaderFailures(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "t"))
	if err != nil {
		t.Fatal(err)
	}
	tl, err := harness.OpenTail(context.Background(), cluster.ListenAddrs(), "t", harness.FromStart)
	if err != nil {
		cluster.Close()
		t.Fatal(err)
	}
	defer tl.Close()
	cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, first := tl.Next(ctx)
	if first == nil || errors.Is(first, context.DeadlineExceeded) || !strings.Contains(first.Error(), "read t partition ") {
		t.Fatalf("Next = %v", first)
	}
	if _, again := tl.Next(ctx); again != first {
		t.Fatalf("second Next = %v, want the first failure %v", again, first)
	}
}

func TestWaitAssigned(t *testing.T) {
	t.Parallel()
	brokers, name := topic(t, 4)
	group := harness.Unique("harness-test-group-")
	var readers []*kafka.Reader
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	// A group reader joins as soon as it is made.
	for range 2 {
		readers = append(readers, kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: group, Topic: name,
			MaxWait: 250 * time.Millisecond, HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := harness.WaitAssigned(ctx, brokers, group, 2, name)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Complete(2) || len(s.Members) != 2 || fmt.Sprint(s.Assigned[name]) != "[0 1 2 3]" || s.Partitions[name] != 4 {
		t.Fatalf("state %+v", s)
	}
	if want := fmt.Sprintf("state Stable, 2 members, %s 4/4 partitions assigned", name); s.String() != want {
		t.Fatalf("String = %q, want %q", s, want)
	}

	// Waiting for a member that never comes says what it saw.
	short, cancelShort := context.WithTimeout(context.Background(), 5*time.Second) // time for a describe or two, even on a loaded machine
	defer cancelShort()
	_, err = harness.WaitAssigned(short, brokers, group, 3, name)
	if !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "consumer group "+group+": want Stable with 3 members owning every partition of "+name+"; saw state Stable, 2 members") {
		t.Fatalf("err = %v", err)
	}

	nobody, err := harness.DescribeGroup(ctx, brokers, harness.Unique("harness-test-nobody-"), name)
	if err != nil || len(nobody.Members) != 0 || nobody.Complete(0) && nobody.State == "Stable" {
		t.Fatalf("a group nobody joined: %+v, %v", nobody, err)
	}
}
