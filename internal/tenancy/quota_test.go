package tenancy

import (
	"errors"
	"testing"

	"github.com/photon-cloud/photon/api"
)

func items(kv ...any) map[string]api.QuotaItem {
	m := map[string]api.QuotaItem{}
	for i := 0; i+2 < len(kv)+1; i += 4 {
		m[kv[i].(string)] = api.QuotaItem{Limit: kv[i+1].(float64), Unit: kv[i+2].(string), Usage: kv[i+3].(float64)}
	}
	return m
}

func TestCarve(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tenant    map[string]api.QuotaItem
		old, next map[string]api.QuotaItem
		wantUsage map[string]float64
		quotaErr  bool
	}{
		{"fits", items("vm.cpu", 10.0, "COUNT", 4.0), nil, items("vm.cpu", 6.0, "COUNT", 0.0),
			map[string]float64{"vm.cpu": 10}, false},
		{"one unit short", items("vm.cpu", 10.0, "COUNT", 5.0), nil, items("vm.cpu", 6.0, "COUNT", 0.0),
			nil, true},
		{"units convert", items("vm.memory", 4.0, "GB", 0.0), nil, items("vm.memory", 3072.0, "MB", 0.0),
			map[string]float64{"vm.memory": 3}, false},
		{"units convert and overflow", items("vm.memory", 4.0, "GB", 1.5), nil, items("vm.memory", 3.0, "GB", 0.0),
			nil, true},
		{"keys the tenant does not limit are free", items("vm.cpu", 1.0, "COUNT", 0.0), nil,
			items("vm.cpu", 1.0, "COUNT", 0.0, "gpu", 100.0, "COUNT", 0.0), map[string]float64{"vm.cpu": 1}, false},
		{"delete returns quota", items("vm.cpu", 10.0, "COUNT", 10.0), items("vm.cpu", 4.0, "COUNT", 0.0), nil,
			map[string]float64{"vm.cpu": 6}, false},
		{"shrink always fits", items("vm.cpu", 10.0, "COUNT", 10.0), items("vm.cpu", 4.0, "COUNT", 0.0),
			items("vm.cpu", 2.0, "COUNT", 0.0), map[string]float64{"vm.cpu": 8}, false},
		{"grow needs room", items("vm.cpu", 10.0, "COUNT", 10.0), items("vm.cpu", 4.0, "COUNT", 0.0),
			items("vm.cpu", 5.0, "COUNT", 0.0), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := api.Quota{QuotaItems: tc.tenant}
			before := q.QuotaItems["vm.cpu"]
			err := carve(&q, tc.old, tc.next)
			if tc.quotaErr {
				if !errors.Is(err, api.ErrQuota) {
					t.Fatalf("err = %v, want QuotaError", err)
				}
				if q.QuotaItems["vm.cpu"] != before {
					t.Errorf("a refused carve changed usage: %+v", q)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.wantUsage {
				if got := q.QuotaItems[k].Usage; got != want {
					t.Errorf("%s usage = %v, want %v", k, got, want)
				}
			}
		})
	}
}

func TestApplyVerb(t *testing.T) {
	cur := api.Quota{QuotaItems: items("vm.cpu", 10.0, "COUNT", 4.0, "vm.memory", 8.0, "GB", 2.0)}
	spec := func(kv ...any) api.QuotaSpec { return api.QuotaSpec{QuotaItems: items(kv...)} }
	for _, tc := range []struct {
		name  string
		verb  string
		spec  api.QuotaSpec
		want  map[string]api.QuotaItem
		code  string
		field string
	}{
		{"PUT replaces", VerbSet, spec("vm.cpu", 5.0, "COUNT", 0.0), items("vm.cpu", 5.0, "COUNT", 4.0), "", ""},
		{"PATCH changes keys", VerbUpdate, spec("vm.memory", 4096.0, "MB", 0.0),
			items("vm.cpu", 10.0, "COUNT", 4.0, "vm.memory", 4096.0, "MB", 2048.0), "", ""},
		{"DELETE removes keys", VerbExclude, spec("vm.memory", 0.0, "GB", 0.0), items("vm.cpu", 10.0, "COUNT", 4.0), "", ""},
		{"below usage", VerbUpdate, spec("vm.cpu", 3.0, "COUNT", 0.0), nil, api.CodeQuotaError, ""},
		{"exclude unknown key", VerbExclude, spec("disk", 1.0, "GB", 0.0), nil, api.CodeInvalidEntity, "quota.quotaItems.disk"},
		{"bad unit", VerbSet, spec("vm.cpu", 1.0, "PB", 0.0), nil, api.CodeInvalidEntity, "quota.quotaItems.vm.cpu"},
		{"negative", VerbSet, spec("vm.cpu", -1.0, "COUNT", 0.0), nil, api.CodeInvalidEntity, "quota.quotaItems.vm.cpu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := applyVerb(cur, tc.verb, tc.spec, "quota")
			if tc.code != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != tc.code || (tc.field != "" && ae.Data["field"] != tc.field) {
					t.Fatalf("err = %#v, want %s on %s", err, tc.code, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %+v, want %+v", k, got[k], w)
				}
			}
		})
	}
}

func TestRequireKeys(t *testing.T) {
	tenant := api.Quota{QuotaItems: items("vm.cpu", 10.0, "COUNT", 0.0, "vm.memory", 8.0, "GB", 0.0)}
	if err := requireKeys(tenant, items("vm.cpu", 1.0, "COUNT", 0.0), "quota"); err == nil {
		t.Error("a project without vm.memory was accepted")
	} else if ae := (*api.Error)(nil); !errors.As(err, &ae) || ae.Data["field"] != "quota.quotaItems.vm.memory" {
		t.Errorf("err = %v, want the field quota.quotaItems.vm.memory", err)
	}
	if err := requireKeys(tenant, items("vm.cpu", 1.0, "COUNT", 0.0, "vm.memory", 1.0, "GB", 0.0), "quota"); err != nil {
		t.Error(err)
	}
}
