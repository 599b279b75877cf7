package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/photon-cloud/photon/api"
)

// jsonOut reports whether -o json was given.
func (a *app) jsonOut() bool { return a.output == "json" }

// plain reports whether -n was given (and not -o json).
func (a *app) plain() bool { return a.nonInteractive && !a.jsonOut() }

// printJSON prints v as indented JSON.
func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", b)
	return err
}

// table prints rows: with -n as tab-separated lines without the header,
// otherwise aligned under the header.
func (a *app) table(header []string, rows [][]string) error {
	if a.plain() {
		for _, r := range rows {
			if _, err := fmt.Fprintln(a.stdout, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
}

// fields prints name/value pairs, aligned, for a human.
func (a *app) fields(kv ...string) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(w, "%s:\t%s\n", kv[i], kv[i+1])
	}
	return w.Flush()
}

// line prints one line to stdout.
func (a *app) line(format string, args ...any) {
	fmt.Fprintf(a.stdout, format+"\n", args...)
}

// num formats a quantity without trailing zeros: 20, 0.5.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// msTime formats milliseconds since the epoch for a human ("" for 0).
func msTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).Local().Format("2006-01-02 15:04:05")
}

// duration of a task or step, "-" if it has not ended.
func duration(start, end int64) string {
	if start == 0 || end == 0 || end < start {
		return "-"
	}
	return (time.Duration(end-start) * time.Millisecond).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quotaRows are a quota's items sorted by key: KEY LIMIT USAGE UNIT.
func quotaRows(q api.Quota) [][]string {
	keys := make([]string, 0, len(q.QuotaItems))
	for k := range q.QuotaItems {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		it := q.QuotaItems[k]
		rows = append(rows, []string{k, num(it.Limit), num(it.Usage), it.Unit})
	}
	return rows
}

var quotaHeader = []string{"KEY", "LIMIT", "USAGE", "UNIT"}

// quotaSummary is a one-line quota: "vm.cpu 4/20 COUNT, vm.memory 8/40 GB".
func quotaSummary(q api.Quota) string {
	var parts []string
	for _, r := range quotaRows(q) {
		parts = append(parts, r[0]+" "+r[2]+"/"+r[1]+" "+r[3])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// printQuota prints a quota: JSON, plain rows or a table.
func (a *app) printQuota(q *api.Quota) error {
	if a.jsonOut() {
		return a.printJSON(q)
	}
	return a.table(quotaHeader, quotaRows(*q))
}

// costString formats cost items the way --cost takes them: "vm.cpu 1 COUNT, vm.memory 2 GB".
func costString(items []api.QuotaLineItem) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		parts = append(parts, it.Key+" "+num(it.Value)+" "+it.Unit)
	}
	return strings.Join(parts, ", ")
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func joinComma(s []string) string { return strings.Join(s, ", ") }
