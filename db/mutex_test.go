package db_test

import "testing"

func TestMutex(t *testing.T) {
	t.Parallel()
	conformance(t, "mutex")
}
