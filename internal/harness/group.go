package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// groupPoll is how often WaitAssigned describes the group.
const groupPoll = 200 * time.Millisecond

// GroupState is what the brokers showed of a consumer group at one moment.
type GroupState struct {
	State      string           // "Stable", "PreparingRebalance", "CompletingRebalance", "Empty", "Dead"
	Members    []string         // member ids, sorted
	Partitions map[string]int   // per topic asked about: its partition count
	Assigned   map[string][]int // per topic asked about: the partitions a member owns, sorted
}

// Complete reports whether the group is Stable with exactly members members
// and every partition of every topic asked about is owned by one of them.
func (s GroupState) Complete(members int) bool {
	if s.State != "Stable" || len(s.Members) != members {
		return false
	}
	for topic, n := range s.Partitions {
		if len(s.Assigned[topic]) != n {
			return false
		}
	}
	return true
}

// String is "state Stable, 4 members, t.orders 6/6 and t.cancelled 6/6
// partitions assigned".
func (s GroupState) String() string {
	if s.State == "" {
		return "nothing yet"
	}
	topics := make([]string, 0, len(s.Partitions))
	for topic := range s.Partitions {
		topics = append(topics, topic)
	}
	slices.Sort(topics)
	parts := make([]string, len(topics))
	for i, topic := range topics {
		parts[i] = fmt.Sprintf("%s %d/%d", topic, len(s.Assigned[topic]), s.Partitions[topic])
	}
	return fmt.Sprintf("state %s, %d members, %s partitions assigned", s.State, len(s.Members), strings.Join(parts, " and "))
}

// DescribeGroup returns the state of group: its members and which partitions
// of topics they own, with the topics' partition counts. A group nobody has
// joined is "Dead" (or "Empty") with no members, not an error.
func DescribeGroup(ctx context.Context, brokers []string, group string, topics ...string) (GroupState, error) {
	return Kafka{Brokers: brokers}.DescribeGroup(ctx, group, topics...)
}

// DescribeGroup is the package's DescribeGroup on k.
func (k Kafka) DescribeGroup(ctx context.Context, group string, topics ...string) (GroupState, error) {
	client, transport := k.newClient()
	defer transport.CloseIdleConnections()
	return describeGroup(ctx, client, k.Brokers, group, topics)
}

func describeGroup(ctx context.Context, client *kafka.Client, brokers []string, group string, topics []string) (GroupState, error) {
	s := GroupState{Partitions: map[string]int{}, Assigned: map[string][]int{}}
	for _, topic := range topics {
		ids, err := partitions(ctx, client, brokers, topic)
		if err != nil {
			return s, err
		}
		s.Partitions[topic] = len(ids)
	}
	res, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return s, fmt.Errorf("describe group %s: %w", group, err)
	}
	if len(res.Groups) != 1 {
		return s, fmt.Errorf("describe group %s: %d groups in the answer", group, len(res.Groups))
	}
	g := res.Groups[0]
	if g.Error != nil {
		return s, fmt.Errorf("describe group %s: %w", group, g.Error)
	}
	s.State = g.GroupState
	owned := map[string]map[int]bool{}
	for _, m := range g.Members {
		s.Members = append(s.Members, m.MemberID)
		for _, t := range m.MemberAssignments.Topics {
			if _, asked := s.Partitions[t.Topic]; !asked {
				continue
			}
			if owned[t.Topic] == nil {
				owned[t.Topic] = map[int]bool{}
			}
			for _, p := range t.Partitions {
				if !owned[t.Topic][p] {
					owned[t.Topic][p] = true
					s.Assigned[t.Topic] = append(s.Assigned[t.Topic], p)
				}
			}
		}
	}
	slices.Sort(s.Members)
	for _, ps := range s.Assigned {
		slices.Sort(ps)
	}
	return s, nil
}

// WaitAssigned waits until group is Stable with exactly members members and
// every partition of topics is assigned to one of them (GroupState.Complete),
// describing the group every 200ms, and returns that state. Give ctx a
// deadline: when ctx ends first, WaitAssigned returns the last state it saw
// and an error that says what it waited for, what it saw (and the last error
// of a describe, if any), and wraps context.Cause(ctx).
func WaitAssigned(ctx context.Context, brokers []string, group string, members int, topics ...string) (GroupState, error) {
	return Kafka{Brokers: brokers}.WaitAssigned(ctx, group, members, topics...)
}

// WaitAssigned is the package's WaitAssigned on k.
func (k Kafka) WaitAssigned(ctx context.Context, group string, members int, topics ...string) (GroupState, error) {
	client, transport := k.newClient()
	defer transport.CloseIdleConnections()
	brokers := k.Brokers
	var (
		last    GroupState
		lastErr error
	)
	tick := time.NewTicker(groupPoll)
	defer tick.Stop()
	for {
		s, err := describeGroup(ctx, client, brokers, group, topics)
		if err == nil && s.Complete(members) {
			return s, nil
		}
		if err == nil {
			last = s
		}
		lastErr = err
		select {
		case <-ctx.Done():
			saw := last.String()
			if lastErr != nil && !errors.Is(lastErr, context.Canceled) && !errors.Is(lastErr, context.DeadlineExceeded) {
				saw += fmt.Sprintf(" (last describe failed: %v)", lastErr)
			}
			return last, fmt.Errorf("consumer group %s: want Stable with %d members owning every partition of %s; saw %s: %w",
				group, members, strings.Join(topics, ", "), saw, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
