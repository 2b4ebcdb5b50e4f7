package api

import (
	"fmt"
	"strings"
)

// Error reports a message that breaks the contract: its kind and every
// problem found, each naming where (a JSON pointer into the payload, "key" or
// "header NAME") and what.
type Error struct {
	Kind     Kind
	Problems []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("api: %s breaks the contract: %s", e.Kind, strings.Join(e.Problems, "; "))
}
