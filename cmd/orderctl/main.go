// Command orderctl drives stockflow by hand: it places and cancels orders,
// generates load, sets and reads stock, tails the outcome events, and runs the
// seed scenario against real stockworker processes (`orderctl demo`).
//
// main only wires: it turns signals into a context, dispatches to the
// subcommand, and maps its error to an exit code (0 ok, 1 runtime failure,
// 2 usage error, 130 interrupted). Each subcommand lives in its own file as a
// function run<Name>(ctx, cfg, args, stdout, stderr) error, so tests call it
// in-process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one orderctl command line and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg := configFromEnv(getenv)
	if len(args) == 0 {
		fmt.Fprint(stderr, "orderctl: no command given\nRun 'orderctl --help' for the list of commands.\n")
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage)
		return 0
	case "help":
		if len(args) == 1 {
			fmt.Fprint(stdout, mainUsage)
			return 0
		}
		// `orderctl help stock set` is `orderctl stock set -help`.
		args = append(args[1:len(args):len(args)], "-help")
	}
	cmd, rest, ok := lookupCommand(args)
	if !ok {
		fmt.Fprintf(stderr, "orderctl: unknown command %q\nRun 'orderctl --help' for the list of commands.\n", args[0])
		return 2
	}
	return exitCode(ctx, cmd.name, cmd.run(ctx, cfg, rest, stdout, stderr), stderr)
}

// exitCode reports err on stderr in one line and returns the exit code for it.
func exitCode(ctx context.Context, cmd string, err error, stderr io.Writer) int {
	var usage *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "orderctl %s: %s\nRun 'orderctl help %s' for usage.\n", usage.cmd, oneLine(usage.msg), usage.cmd)
		return 2
	case ctx.Err() != nil:
		// Interrupted: whatever failed afterwards is a consequence.
		fmt.Fprintf(stderr, "orderctl %s: interrupted\n", cmd)
		return 130
	default:
		fmt.Fprintf(stderr, "orderctl %s: %s\n", cmd, oneLine(err.Error()))
		return 1
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
