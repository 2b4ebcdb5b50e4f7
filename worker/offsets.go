package worker

import (
	"sync"

	"github.com/segmentio/kafka-go"
)

// offsetEntry is one fetched message in the commit tracker.
type offsetEntry struct {
	offset int64
	done   bool
}

// partitionKey names a partition of a topic.
type partitionKey struct {
	topic     string
	partition int
}

// offsets tracks, per partition, which fetched messages are settled (answered
// or parked) and so how far the partition may be committed: up to, not past,
// the first message still in flight. Messages settle out of order (lanes), so
// the committable offset is the one after the longest settled prefix.
type offsets struct {
	mu    sync.Mutex
	parts map[partitionKey]*partitionTrack
}

type partitionTrack struct {
	queue     []*offsetEntry // fetched, in fetch order, from the first unsettled
	next      int64          // the offset to commit (one past the settled prefix); -1 none yet
	committed int64          // the offset last committed; -1 none yet
}

func newOffsets() *offsets { return &offsets{parts: map[partitionKey]*partitionTrack{}} }

// fetched records m as in flight and returns its entry.
func (o *offsets) fetched(m kafka.Message) *offsetEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := partitionKey{m.Topic, m.Partition}
	p := o.parts[k]
	if p == nil {
		p = &partitionTrack{next: -1, committed: -1}
		o.parts[k] = p
	}
	e := &offsetEntry{offset: m.Offset}
	p.queue = append(p.queue, e)
	return e
}

// settled marks e settled and reports whether its partition may now be
// committed further.
func (o *offsets) settled(m kafka.Message, e *offsetEntry) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.done = true
	p := o.parts[partitionKey{m.Topic, m.Partition}]
	advanced := false
	for len(p.queue) > 0 && p.queue[0].done {
		// After a rebalance the same offsets may be fetched again behind
		// later ones: the committable offset only moves forward, and an
		// offset settled once was answered, whoever answers it again.
		if next := p.queue[0].offset + 1; next > p.next {
			p.next, advanced = next, true
		}
		p.queue[0] = nil
		p.queue = p.queue[1:]
	}
	return advanced
}

// pending returns, per partition that settled further than it was committed,
// the message to commit (kafka-go commits the offset after it).
func (o *offsets) pending() []kafka.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []kafka.Message
	for k, p := range o.parts {
		if p.next > p.committed {
			out = append(out, kafka.Message{Topic: k.topic, Partition: k.partition, Offset: p.next - 1})
		}
	}
	return out
}

// committed records that msgs were committed.
func (o *offsets) committed(msgs []kafka.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range msgs {
		if p := o.parts[partitionKey{m.Topic, m.Partition}]; p != nil && m.Offset+1 > p.committed {
			p.committed = m.Offset + 1
		}
	}
}
