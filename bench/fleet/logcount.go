package main

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// logCounts is a slog handler for the simulated hosts' logs: instead of
// printing thousands of lines it counts their records at Info and above
// by message and error (ids and numbers left out), for the summary (why
// host streams ended, say).
type logCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func newLogCounts() *logCounts { return &logCounts{n: map[string]int{}} }

func (l *logCounts) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }

// varying are the parts of a message that differ between hosts and
// reports: ids, numbers, addresses.
var varying = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}|[0-9]+`)

func (l *logCounts) Handle(_ context.Context, r slog.Record) error {
	key := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" || a.Key == "err" {
			key += ": " + varying.ReplaceAllString(a.Value.String(), "N")
		}
		return true
	})
	l.mu.Lock()
	l.n[key]++
	l.mu.Unlock()
	return nil
}

func (l *logCounts) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounts) WithGroup(string) slog.Handler      { return l }

// String is the counts, most frequent first, one per line ("" if none).
func (l *logCounts) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.n))
	for k := range l.n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return l.n[b] - l.n[a] })
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %6d  %s\n", l.n[k], k)
	}
	return b.String()
}
