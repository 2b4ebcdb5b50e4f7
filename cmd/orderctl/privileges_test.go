package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/testsvc"
)

// orderctl stock set, get and list work as the worker's least-privilege user
// once the schema is current (as `orderctl stock set -help` says): no
// database is created, no migration applied.
func TestStockAsTheWorkerUser(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MySQLDSN = testsvc.MySQLUser(t, testsvc.DatabaseDSN(t), testsvc.UserOptions{Grants: testsvc.WorkerGrants})
	ctx := testContext(t, time.Minute)
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"16=10"}, {"16=7", "17=1"}} {
		if err := runStockSet(ctx, cfg, args, &out, &errb); err != nil {
			t.Fatalf("stock set %v as the worker's user: %v", args, err)
		}
	}
	out.Reset()
	if err := runStockGet(ctx, cfg, []string{"16", "17"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if rows := parseTable(t, out.String()); rows["16"][0] != "7" || rows["16"][1] != "1" || rows["17"][0] != "1" {
		t.Fatalf("get:\n%s", out.String())
	}
}
