package producer

// JavaPartitionOf6 returns, for the keys of the Java vector table, the
// partition the Java client picks among 6 partitions: for the tests of
// package producer_test, which publish to a real broker.
func JavaPartitionOf6() map[string]int {
	out := map[string]int{}
	for _, v := range javaMurmur2 {
		if v.key != "" {
			out[v.key] = v.partitions[2]
		}
	}
	return out
}
