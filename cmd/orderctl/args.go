package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stockflow/stockflow/events"
)

// Parsing of the positional arguments. Every message names the argument it
// is about, so `orderctl place A1 16:x` says "16:x: NUM must be a whole number ≥ 1".

// parseOrderID checks an order id against the contract (1..128 bytes of UTF-8).
func parseOrderID(s string) (string, error) {
	switch {
	case s == "":
		return "", errors.New("ORDER_ID must not be empty")
	case len(s) > events.MaxOrderIDBytes:
		return "", fmt.Errorf("ORDER_ID is %d bytes, at most %d allowed", len(s), events.MaxOrderIDBytes)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("ORDER_ID %q is not valid UTF-8", s)
	}
	return s, nil
}

// parseGoods parses a goods id (a whole number ≥ 1).
func parseGoods(s string) (int64, error) {
	g, err := strconv.ParseInt(s, 10, 64)
	if err != nil || g < 1 {
		return 0, fmt.Errorf("%s: GOODS must be a whole number ≥ 1", s)
	}
	return g, nil
}

// parseLine parses one order line, GOODS:NUM.
func parseLine(s string) (events.Line, error) {
	gs, ns, ok := strings.Cut(s, ":")
	if !ok {
		return events.Line{}, fmt.Errorf("%s: want GOODS:NUM, for example 16:1", s)
	}
	g, err := strconv.ParseInt(gs, 10, 64)
	if err != nil || g < 1 {
		return events.Line{}, fmt.Errorf("%s: GOODS must be a whole number ≥ 1", s)
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(ns, "-"):
		return events.Line{}, fmt.Errorf("%s: NUM must be at most %d", s, math.MaxInt32)
	case err != nil || n < 1:
		return events.Line{}, fmt.Errorf("%s: NUM must be a whole number ≥ 1", s)
	case n > math.MaxInt32:
		return events.Line{}, fmt.Errorf("%s: NUM must be at most %d", s, math.MaxInt32)
	}
	return events.Line{GoodsID: g, Num: int32(n)}, nil
}

// parseLines parses the lines of an order, merges lines of the same goods and
// sorts them by goods id, as the worker would.
func parseLines(args []string) ([]events.Line, error) {
	if len(args) == 0 {
		return nil, errors.New("an order needs at least one GOODS:NUM line")
	}
	if len(args) > events.MaxLines {
		return nil, fmt.Errorf("%d lines, an order has at most %d", len(args), events.MaxLines)
	}
	lines := make([]events.Line, 0, len(args))
	var errs []error
	for _, a := range args {
		l, err := parseLine(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lines = append(lines, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	merged, overflow := events.MergeLines(lines)
	if overflow {
		return nil, fmt.Errorf("the NUMs of one goods add up to more than %d", math.MaxInt32)
	}
	return merged, nil
}

// stockArg is one GOODS=N argument of `stock set`.
type stockArg struct {
	Goods  int64
	Stocks int32
}

// parseStockArg parses GOODS=N (N a whole number ≥ 0).
func parseStockArg(s string) (stockArg, error) {
	gs, ns, ok := strings.Cut(s, "=")
	if !ok {
		return stockArg{}, fmt.Errorf("%s: want GOODS=N, for example 16=10", s)
	}
	g, err := strconv.ParseInt(gs, 10, 64)
	if err != nil || g < 1 {
		return stockArg{}, fmt.Errorf("%s: GOODS must be a whole number ≥ 1", s)
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(ns, "-"):
		return stockArg{}, fmt.Errorf("%s: N must be at most %d", s, math.MaxInt32)
	case err != nil || n < 0:
		return stockArg{}, fmt.Errorf("%s: N must be a whole number ≥ 0", s)
	case n > math.MaxInt32:
		return stockArg{}, fmt.Errorf("%s: N must be at most %d", s, math.MaxInt32)
	}
	return stockArg{Goods: g, Stocks: int32(n)}, nil
}

// parseStockArgs parses every GOODS=N; a goods named twice is an error.
func parseStockArgs(args []string) ([]stockArg, error) {
	if len(args) == 0 {
		return nil, errors.New("name at least one GOODS=N, for example 16=10")
	}
	var (
		out  []stockArg
		errs []error
		seen = map[int64]bool{}
	)
	for _, a := range args {
		s, err := parseStockArg(a)
		switch {
		case err != nil:
			errs = append(errs, err)
		case seen[s.Goods]:
			errs = append(errs, fmt.Errorf("%s: goods %d is named twice", a, s.Goods))
		default:
			seen[s.Goods] = true
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}

// formatLines renders lines as "16×1 17×2".
func formatLines(lines []events.Line) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = fmt.Sprintf("%d×%d", l.GoodsID, l.Num)
	}
	return strings.Join(parts, " ")
}
