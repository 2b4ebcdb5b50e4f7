package producer

import (
	"hash/fnv"
	"testing"
)

// javaMurmur2 holds what the Java client (kafka-clients 4.1.1) computes for
// each key, UTF-8 encoded: Utils.murmur2(key), and
// BuiltInPartitioner.partitionForKey(key, n) — toPositive(murmur2) % n — for
// n = 1, 3, 6, 7, 12 and 100. The hashes of "21", "foobar", "abc" and the
// three long strings are also the vectors of Kafka's own UtilsTest.
var javaMurmur2 = []struct {
	key        string
	hash       int32
	partitions [6]int // for javaPartitionCounts
}{
	{"", 275646681, [6]int{0, 0, 3, 2, 9, 81}},
	{"a", -1563381124, [6]int{0, 1, 4, 5, 4, 24}},
	{"ab", 316155434, [6]int{0, 2, 2, 0, 2, 34}},
	{"abc", 479470107, [6]int{0, 0, 3, 4, 3, 7}},
	{"abcd", -1323649548, [6]int{0, 2, 2, 5, 8, 0}},
	{"A1001", -1896818263, [6]int{0, 1, 1, 5, 1, 85}},
	{"A1002", 771224372, [6]int{0, 2, 2, 2, 8, 72}},
	{"order-42", 501153024, [6]int{0, 0, 0, 1, 0, 24}},
	{"21", -973932308, [6]int{0, 0, 0, 3, 0, 40}},
	{"foobar", -790332482, [6]int{0, 0, 0, 0, 6, 66}},
	{"Ünïcødé-順序", 1764438358, [6]int{0, 1, 4, 4, 10, 58}},
	{"o-0123456789abcdef", 2078773404, [6]int{0, 0, 0, 1, 0, 4}},
	{"9223372036854775807", -1221667907, [6]int{0, 0, 3, 4, 9, 41}},
	{"x:stock-deducted", 245769592, [6]int{0, 1, 4, 5, 4, 92}},
	{"a-little-bit-long-string", -985981536, [6]int{0, 2, 2, 1, 8, 12}},
	{"a-little-bit-longer-string", -1486304829, [6]int{0, 2, 5, 0, 11, 19}},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, [6]int{0, 2, 5, 3, 5, 77}},
}

var javaPartitionCounts = [6]int{1, 3, 6, 7, 12, 100}

// The default partitioner puts every key where the Java client would. The
// table is checked against itself too: Java's partition is the hash with its
// sign bit cleared (not Math.abs) modulo the partitions.
func TestMurmur2MatchesTheJavaClient(t *testing.T) {
	var zero Options
	for _, v := range javaMurmur2 {
		for i, n := range javaPartitionCounts {
			if p := int(v.hash&0x7fffffff) % n; p != v.partitions[i] {
				t.Fatalf("vector table: key %q: toPositive(%d) %% %d = %d, table says %d", v.key, v.hash, n, p, v.partitions[i])
			}
			if got := zero.Partitioner.Partition([]byte(v.key), n); got != v.partitions[i] {
				t.Errorf("default partitioner: key %q of %d partitions → %d, Java → %d", v.key, n, got, v.partitions[i])
			}
			if got := Murmur2.Partition([]byte(v.key), n); got != v.partitions[i] {
				t.Errorf("murmur2: key %q of %d partitions → %d, Java → %d", v.key, n, got, v.partitions[i])
			}
		}
	}
}

// fnv1a keeps the placement stockworker had before murmur2 was the default:
// kafka-go's Hash, FNV-1a as an int32 modulo the partitions, sign dropped.
func TestFNV1aKeepsTheOldPlacement(t *testing.T) {
	for _, v := range javaMurmur2 {
		for _, n := range javaPartitionCounts {
			h := fnv.New32a()
			h.Write([]byte(v.key))
			want := int(int32(h.Sum32()) % int32(n))
			if want < 0 {
				want = -want
			}
			if got := FNV1a.Partition([]byte(v.key), n); got != want {
				t.Errorf("fnv1a: key %q of %d partitions → %d, want %d", v.key, n, got, want)
			}
		}
	}
}

func TestParsePartitioner(t *testing.T) {
	for _, name := range Partitioners() {
		if p, err := ParsePartitioner(name); err != nil || string(p) != name {
			t.Errorf("ParsePartitioner(%q) = %q, %v", name, p, err)
		}
	}
	if Partitioners()[0] != string(Murmur2) {
		t.Errorf("the default is not listed first: %v", Partitioners())
	}
	for _, bad := range []string{"", "hash", "Murmur2", "crc32"} {
		if _, err := ParsePartitioner(bad); err == nil {
			t.Errorf("ParsePartitioner(%q) accepted", bad)
		}
	}
}
