package db_test

import "testing"

func TestOptimistic(t *testing.T) {
	t.Parallel()
	conformance(t, "optimistic")
}
