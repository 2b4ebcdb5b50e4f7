package main

import (
	"context"
	"io"
	"slices"
	"strings"
)

// runFunc runs one subcommand. args are the subcommand's own arguments (flags
// and positional arguments); cfg holds the shared settings from the
// environment, which the subcommand's common flags may override.
type runFunc func(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error

type command struct {
	name string
	run  runFunc
}

// lookupCommand finds the command args start with ("stock get" is two words)
// and returns it with the arguments that follow its name.
func lookupCommand(args []string) (command, []string, bool) {
	commands := []command{
		{"place", runPlace},
		{"cancel", runCancel},
		{"load", runLoad},
		{"stock set", runStockSet},
		{"stock get", runStockGet},
		{"stock list", runStockList},
		{"stock", runStock},
		{"watch", runWatch},
		{"dlq list", runDLQList},
		{"dlq replay", runDLQReplay},
		{"dlq", runDLQ},
		{"demo", runDemo},
	}
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

const mainUsage = `orderctl drives stockflow by hand: it places and cancels orders, generates
load, sets and reads stock, and prints the outcome events of the workers.

Usage:
  orderctl COMMAND [flags] [arguments]

Commands:
  place ORDER_ID GOODS:NUM...   publish an order-placed event (-wait for its outcome)
  cancel ORDER_ID               publish an order-cancelled event
  load -n N                     publish N generated orders, as fast as possible or at -rate
  stock set GOODS=N...          set the stock of goods (creates and migrates the database)
  stock get GOODS...            show the stock of goods
  stock list                    list the stocked goods
  watch                         print outcome events (stock.events) as they arrive
  dlq list                      show the messages parked on the dead-letter topic, with their errors
  dlq replay (-offset N | -all) put parked messages back on their source topic
  demo                          20 concurrent orders for 10 items, per lock strategy,
                                against two real stockworker processes

Common flags, accepted by every command (each also an environment variable; a flag wins):
  -kafka-brokers    KAFKA_BROKERS     default localhost:9092
  -mysql-dsn        MYSQL_DSN         default root@tcp(127.0.0.1:3306)/stockflow?parseTime=true
  -redis-addr       REDIS_ADDR        default 127.0.0.1:6379
  -orders-topic     ORDERS_TOPIC      default orders.placed
  -cancelled-topic  CANCELLED_TOPIC   default orders.cancelled
  -events-topic     EVENTS_TOPIC      default stock.events
  -dlq-topic        DLQ_TOPIC         default orders.dlq

Kafka security, common flags too (stockworker's settings by the same names):
  -kafka-tls             KAFKA_TLS             TLS, verifying the broker's certificate and name
  -kafka-tls-ca-file     KAFKA_TLS_CA_FILE     CA of the brokers' certificates (default: system roots)
  -kafka-tls-cert-file   KAFKA_TLS_CERT_FILE   client certificate, with -kafka-tls-key-file
  -kafka-tls-key-file    KAFKA_TLS_KEY_FILE
  -kafka-sasl-mechanism  KAFKA_SASL_MECHANISM  PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: no SASL)
  -kafka-sasl-username   KAFKA_SASL_USERNAME
                         KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE: the password, environment only

MySQL, common flags too (stockworker's settings by the same names):
  MYSQL_DSN or MYSQL_DSN_FILE  the DSN with its password, environment only: -mysql-dsn
                               refuses a DSN with a password
  -mysql-tls-ca-file     MYSQL_TLS_CA_FILE     CA of MySQL's certificate: TLS, verifying it and the host
  -mysql-tls-cert-file   MYSQL_TLS_CERT_FILE   client certificate, with -mysql-tls-key-file
  -mysql-tls-key-file    MYSQL_TLS_KEY_FILE

Examples:
  orderctl stock set 16=10 17=5
  orderctl place A1001 16:1 17:2 -wait
  orderctl cancel A1001
  orderctl watch -from-beginning -n 10
  orderctl load -n 10000 -goods hot -rate 2000
  orderctl dlq list
  orderctl demo -worker bin/stockworker

Run 'orderctl help COMMAND' (or 'orderctl COMMAND -help') for its flags and examples.
Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted.
`
