package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/producer"
)

const dlqHelp = `orderctl dlq shows the messages parked on the dead-letter topic, and puts them
back on their source topic once the cause is fixed.

A message is on the dead-letter topic for one of two reasons (column KIND):
  undecodable  its bytes are not an order (not UTF-8, not JSON, no usable order_id)
  poison       handling it kept failing on its own while the services answered
               (ATTEMPTS attempts); the partition moved on without it

Usage:
  orderctl dlq list [flags]
  orderctl dlq replay [flags] (-offset N [-partition P] | -all)

Replaying publishes each chosen message's original key and value to the topic
named in its source-topic header (acks=all), with a header dlq-replay naming
where it was parked. Workers treat it like any other message; the ledger makes
a replay of an order already decided harmless. A letter that had to be cut to
fit the broker's limit (truncated-*-bytes headers) is not replayed: it is no
longer the original. Nothing is removed from the dead-letter topic.

Examples:
  orderctl dlq list
  orderctl dlq list -json | jq .error
  orderctl dlq replay -offset 12              # the letter at offset 12
  orderctl dlq replay -offset 12 -partition 3 # when offset 12 exists in several partitions
  orderctl dlq replay -all -dry-run           # what -all would replay
`

// runDLQ is `orderctl dlq` without a subcommand.
func runDLQ(_ context.Context, cfg config, args []string, stdout, _ io.Writer) error {
	fs := newFlagSet("dlq", dlqHelp, &cfg)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("dlq", "want a subcommand: list or replay")
	}
	return usagef("dlq", "unknown subcommand %q: want list or replay", pos[0])
}

// letter is one message of the dead-letter topic.
type letter struct {
	kafka.Message
}

func (l letter) header(k string) string {
	v, _ := producer.Header(l.Message, k)
	return v
}

func (l letter) truncated() bool {
	_, k := producer.Header(l.Message, producer.HeaderTruncatedKey)
	_, v := producer.Header(l.Message, producer.HeaderTruncatedValue)
	return k || v
}

func (l letter) source() string {
	t := l.header(producer.HeaderSourceTopic)
	if t == "" {
		return "?"
	}
	return fmt.Sprintf("%s/%s@%s", t, l.header(producer.HeaderSourcePartition), l.header(producer.HeaderSourceOffset))
}

// runDLQList is `orderctl dlq list`.
func runDLQList(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dlq list", dlqHelp, &cfg)
	asJSON := fs.Bool("json", false, "one JSON object per letter, with every header and the value (base64 when not UTF-8)")
	full := fs.Bool("full", false, "print whole errors and keys instead of cutting them to the terminal")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("dlq list", "unexpected argument %q", pos[0])
	}
	letters, err := readLetters(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, l := range letters {
			if err := enc.Encode(letterJSON(l)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(letters) == 0 {
		fmt.Fprintf(stdout, "%s is empty: nothing is parked\n", cfg.DLQTopic)
		return nil
	}
	cut := func(s string, n int) string {
		if *full || len(s) <= n {
			return s
		}
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		return s[:n] + "…"
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION:OFFSET\tKIND\tSOURCE\tATTEMPTS\tKEY\tBYTES\tERROR")
	for _, l := range letters {
		kind := l.header(producer.HeaderKind)
		if kind == "" {
			kind = "-"
		}
		attempts := l.header(producer.HeaderAttempts)
		if attempts == "" {
			attempts = "-"
		}
		size := strconv.Itoa(len(l.Value))
		if v := l.header(producer.HeaderTruncatedValue); v != "" {
			size = v + " (cut)"
		}
		fmt.Fprintf(tw, "%d:%d\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Partition, l.Offset, kind, l.source(), attempts,
			cut(strconv.Quote(string(l.Key)), 24), size, cut(oneLine(l.header(producer.HeaderError)), 100))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d letter(s) on %s\n", len(letters), cfg.DLQTopic)
	return nil
}

// runDLQReplay is `orderctl dlq replay`.
func runDLQReplay(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dlq replay", dlqHelp, &cfg)
	offset := fs.Int64("offset", -1, "replay the letter at this offset of the dead-letter topic")
	partition := fs.Int("partition", -1, "with -offset: the partition of the dead-letter topic (needed when the offset exists in several)")
	all := fs.Bool("all", false, "replay every letter (except cut ones)")
	dryRun := fs.Bool("dry-run", false, "print what would be replayed, publish nothing")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usagef("dlq replay", "unexpected argument %q", pos[0])
	case *all == (*offset >= 0):
		return usagef("dlq replay", "give exactly one of -offset N or -all")
	case *partition >= 0 && *offset < 0:
		return usagef("dlq replay", "-partition needs -offset")
	}
	letters, err := readLetters(ctx, cfg)
	if err != nil {
		return err
	}
	chosen := letters
	if !*all {
		chosen = nil
		var parts []string
		for _, l := range letters {
			if l.Offset == *offset && (*partition < 0 || l.Partition == *partition) {
				chosen = append(chosen, l)
				parts = append(parts, strconv.Itoa(l.Partition))
			}
		}
		switch {
		case len(chosen) == 0 && *partition >= 0:
			return fmt.Errorf("no letter at offset %d of %s partition %d (orderctl dlq list shows them)", *offset, cfg.DLQTopic, *partition)
		case len(chosen) == 0:
			return fmt.Errorf("no letter at offset %d of %s (orderctl dlq list shows them)", *offset, cfg.DLQTopic)
		case len(chosen) > 1:
			return usagef("dlq replay", "offset %d exists in partitions %s of %s: add -partition P", *offset, strings.Join(parts, ", "), cfg.DLQTopic)
		}
	}
	var msgs []kafka.Message
	var replayed []letter
	skipped := 0
	for _, l := range chosen {
		src := l.header(producer.HeaderSourceTopic)
		switch {
		case src == "":
			fmt.Fprintf(stderr, "skipped %d:%d: it has no source-topic header\n", l.Partition, l.Offset)
			skipped++
			continue
		case l.truncated():
			fmt.Fprintf(stderr, "skipped %d:%d: it was cut to fit the broker's limit (value %s bytes), so it is not the original\n",
				l.Partition, l.Offset, l.header(producer.HeaderTruncatedValue))
			skipped++
			continue
		}
		msgs = append(msgs, kafka.Message{Topic: src, Key: l.Key, Value: l.Value, Headers: []kafka.Header{
			{Key: "dlq-replay", Value: []byte(fmt.Sprintf("%s/%d@%d", cfg.DLQTopic, l.Partition, l.Offset))},
		}})
		replayed = append(replayed, l)
	}
	if !*dryRun && len(msgs) > 0 {
		if err := publish(ctx, cfg.kafka(), msgs...); err != nil {
			return err
		}
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	for i, l := range replayed {
		fmt.Fprintf(stdout, "%s %d:%d → %s (key %q, %s)\n", verb, l.Partition, l.Offset, msgs[i].Topic, clipString(string(l.Key), 40),
			l.header(producer.HeaderKind))
	}
	fmt.Fprintf(stdout, "%s %d, skipped %d\n", verb, len(replayed), skipped)
	if len(replayed) == 0 && skipped > 0 {
		return errors.New("nothing could be replayed")
	}
	return nil
}

// readLetters reads the dead-letter topic from its start up to its end as it
// was when called, ordered by partition and offset.
func readLetters(ctx context.Context, cfg config) ([]letter, error) {
	k := cfg.kafka()
	ends, err := startOffsets(ctx, k, cfg.DLQTopic, false)
	if err != nil {
		return nil, err
	}
	firsts, err := firstOffsets(ctx, k, cfg.DLQTopic, ends)
	if err != nil {
		return nil, err
	}
	remaining := 0
	for p, end := range ends {
		// A partition whose letters retention has deleted has nothing to wait for.
		if end > firsts[p] {
			remaining++
		}
	}
	if remaining == 0 {
		return nil, nil
	}
	t, err := openTail(ctx, k, cfg.DLQTopic, true)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*kafkaTimeout)
	defer cancel()
	var out []letter
	for remaining > 0 {
		m, err := t.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", cfg.DLQTopic, err)
		}
		if end := ends[m.Partition]; m.Offset < end {
			out = append(out, letter{m})
			if m.Offset == end-1 {
				remaining--
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out, nil
}

// firstOffsets returns the first offset still held of each partition in ends.
func firstOffsets(ctx context.Context, k harness.Kafka, topic string, ends map[int]int64) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	client, transport := newClient(k)
	defer transport.CloseIdleConnections()
	var reqs []kafka.OffsetRequest
	for p := range ends {
		reqs = append(reqs, kafka.FirstOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("first offsets of %s: %w", topic, err)
	}
	firsts := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("first offset of %s partition %d: %w", topic, p.Partition, p.Error)
		}
		firsts[p.Partition] = p.FirstOffset
	}
	return firsts, nil
}

// letterJSON is a letter as `dlq list -json` prints it.
func letterJSON(l letter) map[string]any {
	headers := map[string]string{}
	for _, h := range l.Headers {
		headers[h.Key] = string(h.Value)
	}
	out := map[string]any{
		"partition": l.Partition,
		"offset":    l.Offset,
		"time":      l.Time.UTC().Format(time.RFC3339Nano),
		"headers":   headers,
	}
	for name, b := range map[string][]byte{"key": l.Key, "value": l.Value} {
		if utf8.Valid(b) {
			out[name] = string(b)
		} else {
			out[name+"_base64"] = base64.StdEncoding.EncodeToString(b)
		}
	}
	return out
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
