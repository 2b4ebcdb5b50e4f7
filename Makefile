# stockflow — entry points. `make help` lists them.
SHELL := /bin/bash
GO    ?= go
BIN   ?= bin

# make run: the worker on the in-process broker unless KAFKA_BROKERS says otherwise.
KAFKA_BROKERS ?= embedded
LOCK_STRATEGY ?= pessimistic

.PHONY: help build image run demo bench bench-short services services-down test test-chaos test-cluster test-unit rules fuzz vet clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## build stockworker and orderctl into bin/
	$(GO) build -o $(BIN)/stockworker ./cmd/stockworker
	$(GO) build -o $(BIN)/orderctl ./cmd/orderctl

services: ## install and start MariaDB, Redis and Kafka (idempotent)
	scripts/services.sh up

services-down: ## stop the services started by scripts/services.sh
	scripts/services.sh down

IMAGE ?= stockflow/stockworker:dev

image: ## build the container image offline (IMAGE, default stockflow/stockworker:dev): static binaries FROM scratch, nothing pulled
	IMAGE=$(IMAGE) scripts/image.sh

run: build ## start MariaDB and Redis, then the worker (embedded Kafka broker by default)
	scripts/services.sh up mariadb redis
	@if [ "$(KAFKA_BROKERS)" = embedded ] && (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; then \
	  echo "make run: 127.0.0.1:9092 is taken (a real Kafka from 'scripts/services.sh up'?)."; \
	  echo "          Use it:  make run KAFKA_BROKERS=127.0.0.1:9092   or stop it:  scripts/services.sh down kafka"; \
	  exit 1; fi
	@scripts/run-hint.sh
	KAFKA_BROKERS=$(KAFKA_BROKERS) LOCK_STRATEGY=$(LOCK_STRATEGY) $(BIN)/stockworker

demo: build ## per lock strategy: two real workers, 20 concurrent orders for 10 items, and a table
	scripts/services.sh up
	$(BIN)/orderctl demo -worker $(BIN)/stockworker

bench: build ## end-to-end benchmark on the real services (~9 min): table, bench/results.json, bench/throughput.svg
	scripts/services.sh up
	$(GO) run ./cmd/stockbench -worker $(BIN)/stockworker $(BENCH_FLAGS)

bench-short: build ## the benchmark's smoke mode (under a minute; also part of make test)
	scripts/services.sh up
	$(GO) run ./cmd/stockbench -worker $(BIN)/stockworker -short -out /tmp/stockflow-bench-short.json -svg /tmp/stockflow-bench-short.svg

test: ## start every service and run all tests with -race against them, the fuzz targets briefly, then the chaos and cluster tests
	scripts/services.sh up
	@# promtool and prometheus (Debian's package) for the rules and scrape tests.
	scripts/prometheus.sh install >/dev/null
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...
	@# A count, not a duration: go1.26's fuzz coordinator can report a spurious
	@# "context deadline exceeded" when -fuzztime expires on a loaded machine
	@# (golang/go#75804, fixed in go1.27).
	$(MAKE) --no-print-directory fuzz FUZZTIME=50000x
	@# The chaos tests restart MariaDB and Redis, so they run alone, after the rest.
	$(GO) test -race -count=1 -timeout 10m -tags chaos -run '^TestChaos' -p 1 ./cmd/stockworker
	scripts/services.sh up
	$(MAKE) --no-print-directory test-cluster

test-chaos: ## only the chaos tests (they restart MariaDB and Redis)
	scripts/services.sh up
	$(GO) test -race -count=1 -timeout 10m -tags chaos -run '^TestChaos' -p 1 -v ./cmd/stockworker

test-cluster: ## a 3-node Kafka cluster under load: a leader killed, the coordinator killed, a rolling restart, NOT_ENOUGH_REPLICAS, an offline events partition (~7 min)
	scripts/services.sh up mariadb redis kafka-cluster
	@# The cluster is stopped afterwards, failed or not: three more JVMs.
	@# -v for progress and the recovery times each test logs; the whole output on a failure.
	@out=$$(mktemp); \
	  $(GO) test -race -count=1 -timeout 15m -tags cluster -run '^TestCluster' -p 1 -v ./cmd/stockworker 2>&1 \
	    | tee "$$out" | grep --line-buffered -E '^(=== RUN|--- |ok)|cluster_test.go'; rc=$${PIPESTATUS[0]}; \
	  if [ $$rc -ne 0 ]; then echo "---- the whole output ----"; cat "$$out"; fi; rm -f "$$out"; \
	  scripts/services.sh down kafka-cluster; exit $$rc

rules: ## check the Prometheus rules and run their unit tests (promtool)
	scripts/prometheus.sh check

test-unit: ## tests that need no service (the others skip unless CI=true)
	$(GO) test -race -count=1 ./events/...

FUZZ_TARGETS := FuzzDecodeOrderPlaced FuzzDecodeOrderCancelled FuzzValidateLines FuzzScanMatchesEncodingJSON
FUZZTIME     ?= 60s

fuzz: ## fuzz the decoder, cancels, the line validator and the scanner (FUZZTIME each: 60s, or Nx executions); finds land in events/testdata/fuzz
	@for f in $(FUZZ_TARGETS); do \
	  echo "fuzz $$f for $(FUZZTIME)"; \
	  $(GO) test ./events -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean: ## remove build output
	rm -rf $(BIN)
