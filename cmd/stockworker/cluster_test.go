//go:build cluster

// Cluster tests: a 3-node KRaft cluster on loopback (scripts/services.sh up
// kafka-cluster), topics with replication 3 and min.insync.replicas 2, two
// worker processes given all three brokers, a steady load of orders, and one
// broker fault each — the broker leading the most partitions killed, the
// group coordinator's broker killed, every broker restarted in turn. No
// worker may exit, every order is answered, the stock is exact and no order
// gets two outcomes. Each prints how long answers stalled. `make test-cluster`
// runs them (and `make test`, after the chaos tests).

package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
	"gorm.io/gorm"
)

// clusterNodes is the size of the cluster scripts/services.sh starts; node i
// (its broker id too) listens on 127.0.0.1:19<i-1>92.
const clusterNodes = 3

func nodeAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", 19092+(i-1)*100) }

// downtime is how long a killed broker stays away: the disruption itself.
const downtime = 10 * time.Second

// onCluster starts the cluster (a no-op when it runs), points testsvc and
// workerEnv at it for this test, waits until every partition is fully
// replicated again after an earlier test's fault, and returns its brokers.
// Whatever the test does to the nodes, they all run again when it ends.
func onCluster(t *testing.T) []string {
	t.Helper()
	services(t, "up", "kafka-cluster")
	var brokers []string
	for i := 1; i <= clusterNodes; i++ {
		brokers = append(brokers, nodeAddr(i))
	}
	t.Setenv("TEST_KAFKA_BROKERS", strings.Join(brokers, ","))
	t.Cleanup(func() { services(t, "up", "kafka-cluster") })
	waitReplicated(t, brokers, 2*time.Minute)
	return brokers
}

// node runs scripts/services.sh node action i.
func node(t *testing.T, action string, i int) {
	t.Helper()
	services(t, "node", action, strconv.Itoa(i))
}

func clusterClient(brokers []string) (*kafka.Client, func()) {
	transport := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport},
		transport.CloseIdleConnections
}

// waitReplicated waits until every partition of every topic, the group
// offsets included, has all its replicas in sync: the cluster has healed.
func waitReplicated(t *testing.T, brokers []string, bound time.Duration) {
	t.Helper()
	client, done := clusterClient(brokers)
	defer done()
	deadline := time.Now().Add(bound)
	last := "no metadata yet"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		cancel()
		if err != nil {
			last = err.Error()
		} else if under := underReplicated(md); len(under) == 0 && len(md.Brokers) == clusterNodes {
			return
		} else {
			last = fmt.Sprintf("%d brokers, under-replicated: %v", len(md.Brokers), under)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not heal within %v: %s", bound, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func underReplicated(md *kafka.MetadataResponse) []string {
	var under []string
	for _, tp := range md.Topics {
		if tp.Error != nil {
			under = append(under, fmt.Sprintf("%s: %v", tp.Name, tp.Error))
			continue
		}
		for _, p := range tp.Partitions {
			if len(p.Isr) < len(p.Replicas) || p.Leader.ID < 1 {
				under = append(under, fmt.Sprintf("%s/%d isr %d of %d", tp.Name, p.ID, len(p.Isr), len(p.Replicas)))
			}
		}
	}
	if len(under) > 5 {
		under = append(under[:5], fmt.Sprintf("and %d more", len(under)-5))
	}
	return under
}

// leaderOfMost is the broker leading the most partitions of topics.
func leaderOfMost(t *testing.T, brokers []string, topics ...string) (id, led int) {
	t.Helper()
	client, done := clusterClient(brokers)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			count[p.Leader.ID]++
		}
	}
	for b, n := range count {
		if n > led || (n == led && b < id) {
			id, led = b, n
		}
	}
	return id, led
}

// coordinatorOf is the broker coordinating group.
func coordinatorOf(t *testing.T, brokers []string, group string) int {
	t.Helper()
	client, done := clusterClient(brokers)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("find the coordinator of %s: %v", group, err)
	}
	return int(resp.Coordinator.NodeID)
}

// clusterRun is one cluster test: its topics, two workers and the load.
type clusterRun struct {
	t       *testing.T
	brokers []string
	topics  testsvc.Topics
	pool    *gorm.DB
	ws      *harness.Workers
	load    *load
}

// clusterRate is the steady load's orders per second; each test sends enough
// orders to last until well after its fault.
const clusterRate = 150

func startClusterRun(t *testing.T, strategy string, orders int) *clusterRun {
	return startClusterRunWith(t, strategy, orders, testConsumers)
}

// startClusterRunWith is startClusterRun with consumers members per worker.
func startClusterRunWith(t *testing.T, strategy string, orders, consumers int) *clusterRun {
	brokers := onCluster(t)
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 6)
	// Cleanups run last first: the cluster heals before NewTopics' cleanup
	// deletes the topics, never while a node is away.
	t.Cleanup(func() { waitReplicated(t, brokers, 2*time.Minute) })
	r := &clusterRun{t: t, brokers: brokers, topics: topics, pool: openDSN(t, dsn)}
	r.requireReplication(3)
	testsvc.Stock(t, r.pool, 16, 100000)
	r.ws = startWorkers(t, "worker", 2, workerEnv(dsn, topics, strategy, "CONSUMERS="+strconv.Itoa(consumers)))
	if err := r.ws.WaitReady(true, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, r.ws.Logs())
	}
	waitAssigned(t, topics, 2*consumers)
	r.load = startLoad(t, topics, orders, clusterRate)
	flowing(t, r.ws, 300)
	return r
}

// requireReplication checks that the test's topics have replicas replicas.
// A broker may learn of a new topic a moment after the one that created it,
// so an unknown topic is asked about again, for a while.
func (r *clusterRun) requireReplication(replicas int) {
	t := r.t
	t.Helper()
	client, done := clusterClient(r.brokers)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		all := []string{r.topics.Orders, r.topics.Cancelled, r.topics.Events, r.topics.DLQ}
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: all})
		known := err == nil && len(md.Topics) == len(all)
		for i := 0; known && i < len(md.Topics); i++ {
			known = md.Topics[i].Error == nil && len(md.Topics[i].Partitions) > 0
		}
		if !known {
			select {
			case <-ctx.Done():
				t.Fatalf("the test's topics are not in the metadata: %v, %v", md, err)
			case <-time.After(200 * time.Millisecond):
				continue
			}
		}
		for _, tp := range md.Topics {
			for _, p := range tp.Partitions {
				if len(p.Replicas) != replicas {
					t.Fatalf("%s/%d has %d replicas, want %d", tp.Name, p.ID, len(p.Replicas), replicas)
				}
			}
		}
		return
	}
}

// alive fails the test if a worker has exited.
func (r *clusterRun) alive(when string) {
	r.t.Helper()
	for _, w := range r.ws.List() {
		select {
		case <-w.Done():
			r.t.Fatalf("%s exited %s: %v\n%s", w.Name(), when, w.Err(), r.ws.Logs())
		default:
		}
	}
}

// finish waits for every order's answer, checks the effects (load.verify),
// runs checks while the workers still run, checks that both workers lived
// through it all and stop cleanly, and reports how long answers stalled
// around the fault.
func (r *clusterRun) finish(fault time.Time, what string, checks ...func()) map[string]time.Time {
	t := r.t
	r.alive("during the fault")
	answered := r.load.verify(func() *gorm.DB { return r.pool }, 100000)
	r.alive("after the fault")
	for _, check := range checks {
		check()
	}
	stopClean(t, r.ws)

	var times []time.Time
	for _, at := range answered {
		times = append(times, at)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	first := "none"
	if i := sort.Search(len(times), func(i int) bool { return times[i].After(fault) }); i < len(times) {
		first = times[i].Sub(fault).Round(time.Millisecond).String()
	}
	// The longest stretch without a new answer, from the fault on: with
	// orders arriving every few milliseconds, the time the cluster fault
	// stopped every answer.
	var gap time.Duration
	prev := fault
	for _, at := range times {
		if at.Before(fault) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	// The longest any order placed from the fault on waited for its answer.
	var wait time.Duration
	r.load.mu.Lock()
	for id, sent := range r.load.sent {
		if at, ok := answered[id]; ok && !sent.Before(fault) {
			wait = max(wait, at.Sub(sent))
		}
	}
	r.load.mu.Unlock()
	t.Logf("%s: first answer %s after the fault; longest pause in answers %v; longest wait of an order placed after it %v",
		what, first, gap.Round(time.Millisecond), wait.Round(time.Millisecond))
	return answered
}

// The broker that leads the most partitions is killed (SIGKILL) and comes back
// 10 s later: its partitions elect new leaders among the in-sync replicas, the
// worker's fetches, publishes and commits move to them.
func TestClusterLeaderKilled(t *testing.T) {
	r := startClusterRun(t, "pessimistic", 40*clusterRate)
	victim, led := leaderOfMost(t, r.brokers, r.topics.Orders, r.topics.Cancelled, r.topics.Events, r.topics.DLQ)
	t.Logf("killing broker %d, leader of %d of the test's %d partitions", victim, led, 4*6)
	fault := time.Now()
	node(t, "kill", victim)
	time.Sleep(downtime)
	r.alive("while the broker was away")
	node(t, "start", victim)
	r.finish(fault, fmt.Sprintf("leader (broker %d) killed", victim))
}

// The group coordinator's broker is killed: the group moves to another
// coordinator, members rejoin, commits go to the new one.
func TestClusterCoordinatorKilled(t *testing.T) {
	r := startClusterRun(t, "batch", 40*clusterRate)
	victim := coordinatorOf(t, r.brokers, groupOf(r.topics))
	t.Logf("killing broker %d, coordinator of group %s", victim, groupOf(r.topics))
	fault := time.Now()
	node(t, "kill", victim)
	time.Sleep(downtime)
	r.alive("while the coordinator was away")
	node(t, "start", victim)
	r.finish(fault, fmt.Sprintf("coordinator (broker %d) killed", victim))
}

// One partition of the events topic goes offline while the others stay up:
// its only replica's broker is stopped for 20 s. The answers bound for it
// wait (held, retried, their offsets not committed); the answers bound for
// the other partitions keep going out meanwhile, and once the broker is back
// every order is answered.
//
// An order's answer goes to the events partition of the same number as its
// orders partition (both keyed by order id, murmur2). With one member per
// worker, the member that consumes orders partition 0 consumes two more: a
// publisher that retried whole batches would stop answering those as well.
func TestClusterOfflinePartition(t *testing.T) {
	r := startClusterRunWith(t, "pessimistic", 60*clusterRate, 1)
	// The partition's only replica is a broker that does not coordinate the
	// group (no rebalance), and one replica is enough for it to take writes.
	coordinator := coordinatorOf(t, r.brokers, groupOf(r.topics))
	victim := 1
	if victim == coordinator {
		victim = 2
	}
	setTopicConfig(t, r.brokers, r.topics.Events, "min.insync.replicas", "1")
	onlyReplica(t, r.brokers, r.topics.Events, 0, victim)
	fault := time.Now()
	node(t, "stop", victim)
	const offline = 20 * time.Second
	time.Sleep(offline)
	back := time.Now()
	r.alive("while a partition was offline")
	node(t, "start", victim)
	answered := r.finish(fault, fmt.Sprintf("events partition 0 offline (broker %d stopped)", victim))

	// Orders placed while the partition was offline, after the first 5 s (a
	// controlled shutdown moves the broker's other partitions first) and up
	// to 2 s before it came back, and how many were answered before it did.
	from, until := fault.Add(5*time.Second), back.Add(-2*time.Second)
	placed, early := make([]int, 6), make([]int, 6)
	r.load.mu.Lock()
	for id, sent := range r.load.sent {
		if sent.Before(from) || !sent.Before(until) {
			continue
		}
		p := producer.Murmur2.Partition([]byte(id), 6)
		placed[p]++
		if at, ok := answered[id]; ok && at.Before(back) {
			early[p]++
		}
	}
	r.load.mu.Unlock()
	t.Logf("while events partition 0 was offline, answered/placed per partition: %v / %v", early, placed)
	if early[0] != 0 {
		t.Errorf("%d answers written to events partition 0 while it had no replica up", early[0])
	}
	for p := 1; p < 6; p++ {
		if early[p] < placed[p]/2 {
			t.Errorf("partition %d: %d of %d orders answered while events partition 0 was offline: the offline partition held them up", p, early[p], placed[p])
		}
	}
}

// onlyReplica reassigns partition of topic to broker alone and waits until
// the metadata shows it as the partition's only replica and leader.
func onlyReplica(t *testing.T, brokers []string, topic string, partition, broker int) {
	t.Helper()
	client, done := clusterClient(brokers)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := client.AlterPartitionReassignments(ctx, &kafka.AlterPartitionReassignmentsRequest{Topic: topic, Timeout: 30 * time.Second,
		Assignments: []kafka.AlterPartitionReassignmentsRequestAssignment{{PartitionID: partition, BrokerIDs: []int{broker}}}})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err == nil {
		for _, pr := range resp.PartitionResults {
			if pr.Error != nil {
				err = pr.Error
			}
		}
	}
	if err != nil {
		t.Fatalf("reassign %s/%d to broker %d: %v", topic, partition, broker, err)
	}
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 {
			for _, p := range md.Topics[0].Partitions {
				if p.ID == partition && len(p.Replicas) == 1 && p.Replicas[0].ID == broker && p.Leader.ID == broker {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s/%d is not on broker %d alone after a minute: %v %v", topic, partition, broker, md, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Every broker is restarted in turn, as a rolling upgrade does: SIGTERM (a
// controlled shutdown that moves leadership away first), start, wait until no
// partition is under-replicated, next.
func TestClusterRollingRestart(t *testing.T) {
	r := startClusterRun(t, "pessimistic", 90*clusterRate)
	fault := time.Now()
	for i := 1; i <= clusterNodes; i++ {
		step := time.Now()
		node(t, "stop", i)
		node(t, "start", i)
		waitReplicated(t, r.brokers, 2*time.Minute)
		r.alive(fmt.Sprintf("while broker %d restarted", i))
		t.Logf("broker %d restarted and the cluster healed in %v", i, time.Since(step).Round(time.Millisecond))
	}
	r.finish(fault, "rolling restart")
}

// Topics the worker creates take the cluster's default replication factor
// (3 here) unless TOPIC_REPLICATION says otherwise.
func TestClusterTopicReplication(t *testing.T) {
	brokers := onCluster(t)
	dsn := testsvc.DatabaseDSN(t)
	for _, c := range []struct {
		setting string
		want    int
	}{{"", 3}, {"2", 2}} {
		topics := testsvc.NewTopics(t, 2) // names and clean-up; deleted here so the worker creates them
		client, done := clusterClient(brokers)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		all := []string{topics.Orders, topics.Cancelled, topics.Events, topics.DLQ}
		if _, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: all}); err != nil {
			t.Fatal(err)
		}
		waitGone(ctx, t, client, all)
		cancel()
		done()
		env := workerEnv(dsn, topics, "atomic")
		if c.setting != "" {
			env = append(env, "TOPIC_REPLICATION="+c.setting)
		}
		ws := startWorkers(t, "worker", 1, env)
		if err := ws.WaitReady(true, time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, ws.Logs())
		}
		r := &clusterRun{t: t, brokers: brokers, topics: topics}
		r.requireReplication(c.want)
		stopClean(t, ws)
	}
}

// waitGone waits until none of topics is in the cluster's metadata.
func waitGone(ctx context.Context, t *testing.T, client *kafka.Client, topics []string) {
	t.Helper()
	for {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		if err == nil && !slices.ContainsFunc(md.Topics, func(tp kafka.Topic) bool { return slices.Contains(topics, tp.Name) }) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topics %v still exist: %v", topics, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setTopicConfig sets one configuration entry of topic.
func setTopicConfig(t *testing.T, brokers []string, topic, name, value string) {
	t.Helper()
	client, done := clusterClient(brokers)
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: name, Value: value, ConfigOperation: kafka.ConfigOperationSet}},
		}},
	})
	if err == nil && len(resp.Resources) == 1 && resp.Resources[0].Error != nil {
		err = resp.Resources[0].Error
	}
	if err != nil {
		t.Fatalf("set %s=%s on %s: %v", name, value, topic, err)
	}
}

// A broker is stopped and the events topic then asks for three in-sync
// replicas: every answer is refused with NOT_ENOUGH_REPLICAS until that is
// undone. (Kafka 4 caps min.insync.replicas at the replication factor, so the
// missing replica has to be real.) The workers retry (not ready, naming the
// cause), never exit, never park an answer or commit an order whose answer was
// not acknowledged, and answer everything once the topic takes writes again.
func TestClusterNotEnoughReplicas(t *testing.T) {
	r := startClusterRun(t, "pessimistic", 40*clusterRate)
	fault := time.Now()
	node(t, "stop", clusterNodes)
	setTopicConfig(t, r.brokers, r.topics.Events, "min.insync.replicas", "3")
	for _, w := range r.ws.List() {
		if err := w.WaitReady(false, 30*time.Second); err != nil {
			t.Errorf("%s stayed ready while every answer was refused: %v", w.Name(), err)
			continue
		}
		code, body, err := w.Get(context.Background(), "/readyz")
		if err != nil || !strings.Contains(strings.ToLower(body), "not enough replicas") {
			t.Errorf("%s /readyz %d does not name the cause: %s %v", w.Name(), code, body, err)
		}
	}
	time.Sleep(downtime)
	r.alive("while answers were refused")
	setTopicConfig(t, r.brokers, r.topics.Events, "min.insync.replicas", "2")
	node(t, "start", clusterNodes)
	r.finish(fault, "NOT_ENOUGH_REPLICAS on the events topic", func() {
		for _, series := range []string{"stockflow_poison_total", "stockflow_dead_letters_total"} {
			if n := waitCounter(t, r.ws, series, nil, 0, time.Second); n != 0 {
				t.Errorf("%s = %v: an answer the cluster refused was dead-lettered", series, n)
			}
		}
	})
}
