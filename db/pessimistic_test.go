package db_test

import "testing"

func TestPessimistic(t *testing.T) {
	t.Parallel()
	conformance(t, "pessimistic")
}
