package api

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// Units of quota and cost items. B and COUNT share one base unit.
const (
	UnitB     = "B"
	UnitKB    = "KB"
	UnitMB    = "MB"
	UnitGB    = "GB"
	UnitCount = "COUNT"
)

var unitFactor = map[string]float64{
	UnitB: 1, UnitCount: 1, UnitKB: 1 << 10, UnitMB: 1 << 20, UnitGB: 1 << 30,
}

// ValidUnit reports whether u is one of B, KB, MB, GB, COUNT.
func ValidUnit(u string) bool { _, ok := unitFactor[u]; return ok }

// ConvertUnit converts v from unit `from` to unit `to`. Both must be valid.
func ConvertUnit(v float64, from, to string) float64 {
	if from == to {
		return v
	}
	return v * unitFactor[from] / unitFactor[to]
}

// QuotaLineItem is one cost or limit item: {"key": "vm.cpu", "value": 2, "unit": "COUNT"}.
type QuotaLineItem struct {
	// Key is a free-form cost key, e.g. "vm.memory".
	Key string `json:"key"`
	// Value is the amount, e.g. 4.
	Value float64 `json:"value"`
	// Unit is one of B, KB, MB, GB, COUNT.
	Unit string `json:"unit"`
}

// QuotaItem is a limit with its current usage, in the limit's unit.
type QuotaItem struct {
	Unit  string  `json:"unit"`
	Limit float64 `json:"limit"`
	Usage float64 `json:"usage"`
}

// Quota is a tenant's or project's quota: {"quotaItems": {"vm.cpu": {...}}}.
type Quota struct {
	QuotaItems map[string]QuotaItem `json:"quotaItems"`
}

// QuotaSpec is what a user writes to set quota: limits per key (usage is ignored).
type QuotaSpec struct {
	QuotaItems map[string]QuotaItem `json:"quotaItems"`
}

// ValidateLineItems checks cost or limit items: non-empty keys, known units,
// finite non-negative values, no key twice. field names the JSON field.
func ValidateLineItems(field string, items []QuotaLineItem) error {
	seen := map[string]bool{}
	for i, it := range items {
		f := field + "[" + strconv.Itoa(i) + "]"
		if err := validateItem(f, it.Key, it.Value, it.Unit); err != nil {
			return err
		}
		if seen[it.Key] {
			return FieldError(f+".key", "%q appears twice", it.Key)
		}
		seen[it.Key] = true
	}
	return nil
}

// Validate checks a quota spec's keys, units and limits.
func (q QuotaSpec) Validate(field string) error {
	for _, k := range q.Keys() {
		it := q.QuotaItems[k]
		if err := validateItem(field+".quotaItems."+k, k, it.Limit, it.Unit); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns the spec's keys in sorted order.
func (q QuotaSpec) Keys() []string {
	keys := make([]string, 0, len(q.QuotaItems))
	for k := range q.QuotaItems {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func validateItem(field, key string, v float64, unit string) error {
	switch {
	case strings.TrimSpace(key) == "" || strings.ContainsAny(key, " \t\n,/"):
		return FieldError(field, "bad key %q", key)
	case len(key) > 128:
		return FieldError(field, "key longer than 128 characters")
	case !ValidUnit(unit):
		return FieldError(field, "unknown unit %q (want B, KB, MB, GB or COUNT)", unit)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return FieldError(field, "value is not a number")
	case v < 0:
		return FieldError(field, "negative value %v", v)
	case v > 1e15:
		return FieldError(field, "value %v too large", v)
	}
	return nil
}

// ParseLimits parses the CLI's limits syntax, "vm.cpu 10 COUNT, vm.memory 4 GB",
// into line items. It validates keys, values and units.
func ParseLimits(s string) ([]QuotaLineItem, error) {
	var items []QuotaLineItem
	if strings.TrimSpace(s) == "" {
		return nil, FieldError("limits", "empty")
	}
	for i, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 3 {
			return nil, FieldError("limits", "item %d %q: want \"KEY VALUE UNIT\"", i+1, strings.TrimSpace(part))
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, FieldError("limits", "item %d %q: bad value %q", i+1, strings.TrimSpace(part), f[1])
		}
		items = append(items, QuotaLineItem{Key: f[0], Value: v, Unit: strings.ToUpper(f[2])})
	}
	if err := ValidateLineItems("limits", items); err != nil {
		return nil, err
	}
	return items, nil
}

// QuotaSpecFromItems turns line items into a quota spec.
func QuotaSpecFromItems(items []QuotaLineItem) *QuotaSpec {
	q := &QuotaSpec{QuotaItems: map[string]QuotaItem{}}
	for _, it := range items {
		q.QuotaItems[it.Key] = QuotaItem{Unit: it.Unit, Limit: it.Value}
	}
	return q
}
