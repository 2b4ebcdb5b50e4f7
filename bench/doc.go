// Package bench holds stockflow's testing.B benchmarks and the output of the
// end-to-end benchmark, cmd/stockbench (results.json, throughput.svg).
//
// The benchmarks here measure one layer at a time, so that a number in the
// end-to-end table can be traced to its cost: the codec (decoding order-placed
// events, encoding outcomes; no I/O), each lock strategy's Deduct on one hot
// goods, sequential and from several goroutines, db.Batch.DeductBatch with 256
// orders, the hot-row UPDATE that bounds every row-at-a-time strategy (all
// against the real MariaDB), and the worker package in-process on a backlog of
// orders in a real Kafka topic (BenchmarkPipeline), the place to take a CPU
// profile of the worker loop:
//
//	go test ./bench -run '^$' -bench 'Pipeline/batch/hot' -benchtime 20000x -cpuprofile cpu.out
//	go tool pprof -top bench.test cpu.out
//
// The service benchmarks skip without MariaDB, Redis or Kafka (they fail under
// CI=true), like the integration tests; start them with scripts/services.sh up.
package bench
