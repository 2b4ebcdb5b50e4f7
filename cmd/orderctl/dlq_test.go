package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// parkLetters writes letters to the dead-letter topic, each to the partition
// its key names ("p0-…" → partition 0), and returns the config.
func parkLetters(t *testing.T, letters ...kafka.Message) config {
	t.Helper()
	tp := testsvc.NewTopics(t, 3)
	cfg := testConfig()
	cfg.OrdersTopic, cfg.CancelledTopic, cfg.EventsTopic, cfg.DLQTopic = tp.Orders, tp.Cancelled, tp.Events, tp.DLQ
	// A transport of its own: kafka.DefaultTransport, shared by the whole test
	// binary, caches topic metadata and would not know the topics just made.
	w := &kafka.Writer{Addr: kafka.TCP(testsvc.KafkaBrokers()...), Transport: &kafka.Transport{}, RequiredAcks: kafka.RequireAll, BatchBytes: 2 << 20,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int {
			return int(m.Key[1] - '0')
		})}
	defer w.Close()
	for i := range letters {
		letters[i].Topic = tp.DLQ
	}
	if err := w.WriteMessages(testContext(t, time.Minute), letters...); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDLQListAndReplay(t *testing.T) {
	t.Parallel()
	src := func(key, value string, offset int64) kafka.Message {
		return kafka.Message{Topic: "ORDERS", Partition: 2, Offset: offset, Key: []byte(key), Value: []byte(value)}
	}
	poison := `{"order_id":"p0-poison","items":[{"goods_id":1,"num":1}]}`
	huge := strings.Repeat("x", 1_100_000)
	letters := []kafka.Message{
		producer.Letter("", src("p0-poison", poison, 7), producer.KindPoison, errors.New("Error 1406: Data too long"), 6),
		producer.DeadLetter("", src("p1-garbage", "not json", 8), errors.New("events: undecodable message: not a JSON object")),
		producer.DeadLetter("", src("p1-huge", huge, 9), errors.New("events: undecodable message")),
	}
	cfg := parkLetters(t, letters...)
	ctx := testContext(t, 2*time.Minute)

	var out, errb bytes.Buffer
	if err := runDLQList(ctx, cfg, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	table := out.String()
	for _, want := range []string{"PARTITION:OFFSET", "0:0", "1:0", "1:1", "poison", "undecodable", "ORDERS/2@7", "Error 1406",
		"1100000 (cut)"} {
		if !strings.Contains(table, want) {
			t.Errorf("list does not show %q:\n%s", want, table)
		}
	}
	if !strings.Contains(errb.String(), "3 letter(s)") {
		t.Errorf("stderr %q", errb.String())
	}

	out.Reset()
	if err := runDLQList(ctx, cfg, []string{"-json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("-json printed %d lines", len(lines))
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["value"] != poison {
		t.Fatalf("first JSON letter = %v, %v", first, err)
	}

	// Offset 0 is in two partitions: ambiguous.
	err := runDLQReplay(ctx, cfg, []string{"-offset", "0"}, &out, &errb)
	var usage *usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "-partition") {
		t.Fatalf("ambiguous offset: %v", err)
	}
	if err := runDLQReplay(ctx, cfg, []string{"-offset", "5", "-partition", "0"}, &out, &errb); err == nil {
		t.Fatal("replayed a letter that does not exist")
	}
	if err := runDLQReplay(ctx, cfg, []string{"-all", "-offset", "1"}, &out, &errb); !errors.As(err, &usage) {
		t.Fatalf("-all with -offset: %v", err)
	}

	// -all replays the two originals to their source topic and skips the cut one.
	out.Reset()
	errb.Reset()
	if err := runDLQReplay(ctx, cfg, []string{"-all", "-dry-run"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "would replay 2, skipped 1") || !strings.Contains(errb.String(), "not the original") {
		t.Fatalf("dry run: %s%s", out.String(), errb.String())
	}
}

// Replaying puts the original bytes back on the source topic, with a header
// naming the letter.
func TestDLQReplayPublishesTheOriginal(t *testing.T) {
	t.Parallel()
	tp := testsvc.NewTopics(t, 3)
	value := `{"order_id":"p2-again","items":[{"goods_id":1,"num":1}]}`
	l := producer.Letter("", kafka.Message{Topic: tp.Orders, Partition: 1, Offset: 3, Key: []byte("p2-again"), Value: []byte(value)},
		producer.KindPoison, errors.New("boom"), 6)
	cfg := parkLetters(t, l)
	cfg.OrdersTopic, cfg.CancelledTopic, cfg.EventsTopic = tp.Orders, tp.Cancelled, tp.Events
	ctx := testContext(t, time.Minute)
	var out, errb bytes.Buffer
	if err := runDLQReplay(ctx, cfg, []string{"-offset", "0"}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "replayed 2:0 → "+tp.Orders) {
		t.Fatalf("stdout %q", out.String())
	}
	got := testsvc.Collect(t, tp.Orders, 1, 30*time.Second)
	if len(got) != 1 || string(got[0].Value) != value || string(got[0].Key) != "p2-again" {
		t.Fatalf("replayed = %v", got)
	}
	if h, _ := producer.Header(got[0], "dlq-replay"); h != cfg.DLQTopic+"/2@0" {
		t.Fatalf("dlq-replay header %q", h)
	}
}

func TestDLQListOfAnEmptyTopic(t *testing.T) {
	t.Parallel()
	tp := testsvc.NewTopics(t, 3)
	cfg := testConfig()
	cfg.DLQTopic = tp.DLQ
	var out, errb bytes.Buffer
	if err := runDLQList(testContext(t, time.Minute), cfg, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "is empty") {
		t.Fatalf("stdout %q", out.String())
	}
	if err := runDLQReplay(testContext(t, time.Minute), cfg, []string{"-all"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
}
