package harness

import (
	"crypto/rand"
	"encoding/hex"
)

// Unique returns prefix followed by 12 random hex digits, for names that must
// not collide across tests, runs and machines sharing a service: databases,
// topics, groups, Redis key prefixes.
func Unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return prefix + hex.EncodeToString(b[:])
}
