package db_test

import "testing"

func TestAtomic(t *testing.T) {
	t.Parallel()
	conformance(t, "atomic")
}
