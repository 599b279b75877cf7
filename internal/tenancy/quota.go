package tenancy

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/photon-cloud/photon/api"
)

// Quota verbs of the /quota endpoints.
const (
	VerbSet     = "PUT"    // replace the whole quota
	VerbUpdate  = "PATCH"  // change the given keys
	VerbExclude = "DELETE" // remove the given keys
)

// eps absorbs float rounding from unit conversions.
const eps = 1e-9

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// carve moves a project's limits from old to next against its tenant's
// quota: for every key the tenant limits, the tenant's usage changes by the
// difference (converted to the tenant's unit), and a rise beyond what is
// free is a QuotaError. old nil means a new project; next nil a deleted one.
func carve(tenant *api.Quota, old, next map[string]api.QuotaItem) error {
	var short []string
	deltas := map[string]float64{}
	for _, k := range slices.Sorted(maps.Keys(tenant.QuotaItems)) {
		ti := tenant.QuotaItems[k]
		d := inUnit(next[k], ti.Unit) - inUnit(old[k], ti.Unit)
		if free := ti.Limit - ti.Usage; d > 0 && d > free+eps*math.Max(1, ti.Limit) {
			short = append(short, fmt.Sprintf("%s needs %s %s, %s %s free",
				k, fmtNum(d), ti.Unit, fmtNum(math.Max(free, 0)), ti.Unit))
		}
		deltas[k] = d
	}
	if len(short) > 0 {
		e := api.Errorf(api.CodeQuotaError, "Not enough quota: %s", joinList(short))
		e.Data = map[string]string{"key": firstKey(short)}
		return e
	}
	for k, d := range deltas {
		ti := tenant.QuotaItems[k]
		ti.Usage = math.Max(0, ti.Usage+d)
		if ti.Usage < eps*math.Max(1, ti.Limit) {
			ti.Usage = 0
		}
		tenant.QuotaItems[k] = ti
	}
	return nil
}

func firstKey(short []string) string {
	var k string
	fmt.Sscan(short[0], &k)
	return k
}

func joinList(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "; "
		}
		out += x
	}
	return out
}

// inUnit converts an item's limit to unit (0 for an absent item).
func inUnit(it api.QuotaItem, unit string) float64 {
	if it.Unit == "" {
		return 0
	}
	return api.ConvertUnit(it.Limit, it.Unit, unit)
}

// requireKeys checks that a project's limits name every key its tenant limits.
func requireKeys(tenant api.Quota, limits map[string]api.QuotaItem, field string) error {
	for _, k := range slices.Sorted(maps.Keys(tenant.QuotaItems)) {
		if _, ok := limits[k]; !ok {
			return api.FieldError(field+".quotaItems."+k, "missing: the tenant limits %s, so the project must name it", k)
		}
	}
	return nil
}

// applyVerb returns q's items after verb with spec, keeping each remaining
// key's usage (converted to its new unit). A limit below usage is refused.
func applyVerb(q api.Quota, verb string, spec api.QuotaSpec, field string) (map[string]api.QuotaItem, error) {
	if err := spec.Validate(field); err != nil {
		return nil, err
	}
	next := map[string]api.QuotaItem{}
	switch verb {
	case VerbSet:
	case VerbUpdate, VerbExclude:
		maps.Copy(next, q.QuotaItems)
	default:
		return nil, fmt.Errorf("unknown quota verb %s", verb)
	}
	for _, k := range spec.Keys() {
		if verb == VerbExclude {
			if _, ok := next[k]; !ok {
				return nil, api.FieldError(field+".quotaItems."+k, "no limit on %s to exclude", k)
			}
			delete(next, k)
			continue
		}
		it := spec.QuotaItems[k]
		next[k] = api.QuotaItem{Unit: it.Unit, Limit: it.Limit}
	}
	for k, it := range next {
		old, ok := q.QuotaItems[k]
		if !ok {
			continue
		}
		it.Usage = api.ConvertUnit(old.Usage, old.Unit, it.Unit)
		if it.Limit+eps*math.Max(1, it.Limit) < it.Usage {
			return nil, api.Errorf(api.CodeQuotaError, "%s limit %s %s is below its usage %s %s",
				k, fmtNum(it.Limit), it.Unit, fmtNum(it.Usage), it.Unit)
		}
		next[k] = it
	}
	return next, nil
}

// specItems returns a spec's items with usage cleared (nil-safe).
func specItems(spec *api.QuotaSpec) map[string]api.QuotaItem {
	out := map[string]api.QuotaItem{}
	if spec == nil {
		return out
	}
	for k, it := range spec.QuotaItems {
		out[k] = api.QuotaItem{Unit: it.Unit, Limit: it.Limit}
	}
	return out
}
