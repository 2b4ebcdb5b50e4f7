package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// When the broker goes away, every partition's reader fails at about the same
// time; the collector reports one failure through progress, and nothing races
// (go test -race: the collector used to write its error from every reader
// goroutine and read it back outside the lock). An in-process broker is the
// one a test can kill.
func TestCollectorReportsAReadFailure(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "events"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := startCollector(context.Background(), cluster.ListenAddrs(), "events")
	cluster.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	deadline := time.Now().Add(time.Minute)
	for {
		_, _, err := c.progress("t")
		if err != nil {
			if !strings.Contains(err.Error(), "read events partition ") {
				t.Fatalf("progress error %v", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no read failure reported within a minute of the broker going away")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
