package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// StartCommand starts the local services (idempotent); Preflight names it.
const StartCommand = "scripts/services.sh up"

// preflightDial bounds the connection attempt to one service.
const preflightDial = 3 * time.Second

// Service is one network service a test or tool needs: its name for messages
// ("MariaDB", "Kafka", "Redis") and its host:port.
type Service struct {
	Name, Addr string
}

// Preflight checks that every service accepts a TCP connection, each within
// 3s (and within ctx). It returns nil when all answer, else one error per
// service that does not, in the order given, each naming the service, its
// address and StartCommand. It checks every service even after a failure, so
// one run shows everything that is missing.
func Preflight(ctx context.Context, services ...Service) error {
	var d net.Dialer
	var errs []error
	for _, s := range services {
		if s.Addr == "" {
			errs = append(errs, fmt.Errorf("%s has no address configured", s.Name))
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, preflightDial)
		c, err := d.DialContext(dctx, "tcp", s.Addr)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s is not reachable at %s (%v); start it with: %s", s.Name, s.Addr, err, StartCommand))
			continue
		}
		_ = c.Close()
	}
	return errors.Join(errs...)
}
