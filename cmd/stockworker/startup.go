package main

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"go.uber.org/zap"
)

// untilReachable runs step until it succeeds, fails in a way that waiting
// cannot heal (away reports which failures can), or ctx ends. A service that
// is away at start — a broker restarting in a rolling upgrade, a database
// failing over — is waited for, with a warning per attempt, instead of
// turning every pod that starts meanwhile into a crash loop. What waiting
// cannot heal (credentials, certificates, a missing grant or topic, invalid
// settings) still stops the worker at once.
func untilReachable(ctx context.Context, log *zap.Logger, service string, away func(error) bool, step func(context.Context) error) error {
	pause := startRetryMin
	for attempt := 1; ; attempt++ {
		err := step(ctx)
		if err == nil || !away(err) || ctx.Err() != nil {
			return err
		}
		log.Warn(service+" does not answer yet; the worker waits for it before it starts",
			zap.Int("attempt", attempt), zap.Duration("backoff", pause), zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, startRetryMax)
	}
}

// The backoff between attempts to reach a service at start.
const (
	startRetryMin = 500 * time.Millisecond
	startRetryMax = 10 * time.Second
)

// kafkaAway reports errors of a cluster that is not there yet (no broker
// answers, a leader or controller is being elected, a request timed out), as
// opposed to one that answers and refuses (kafkaconn.Refused, authorization,
// an invalid request).
func kafkaAway(err error) bool {
	if kafkaconn.Refused(err) {
		return false
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
