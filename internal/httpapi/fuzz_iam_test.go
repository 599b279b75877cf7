package httpapi_test

import (
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/audit"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/httpapi"
)

// iamDecoders are the identity endpoints' body and query decoders.
var iamDecoders = []func([]byte) error{
	func(b []byte) error { _, err := httpapi.DecodeTokenRequest("application/json", b); return err },
	func(b []byte) error {
		_, err := httpapi.DecodeTokenRequest("application/x-www-form-urlencoded", b)
		return err
	},
	func(b []byte) error { _, err := httpapi.DecodeDeltas(auth.ScopeTenant, b); return err },
	func(b []byte) error { _, err := httpapi.DecodeDeltas(auth.ScopeProject, b); return err },
	func(b []byte) error {
		var bs []api.RoleBinding
		if err := httpapi.DecodeBody(b, &bs); err != nil {
			return err
		}
		_, err := auth.ValidateBindings(auth.ScopeSystem, bs)
		return err
	},
	func(b []byte) error {
		var s api.UserCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return auth.ValidateUserSpec(&s)
	},
	func(b []byte) error {
		var s api.UserUpdateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return auth.ValidateUserUpdate(&s)
	},
	func(b []byte) error { _, err := audit.ParseSince(string(b), time.Now()); return err },
}

// FuzzIAMDecoders: no token request, role binding, user spec or ?since=
// makes a decoder panic or yield anything but nil or a 4xx API error.
func FuzzIAMDecoders(f *testing.F) {
	for _, seed := range []string{
		`{"grant_type":"password","username":"alice","password":"secret-1"}`,
		`grant_type=password&username=alice&password=secret-1&scope=openid`,
		`grant_type=refresh_token&refresh_token=0190.abc`,
		`{"action":"ADD","role":"tenant-admin","subject":"user:alice"}`,
		`[{"action":"REMOVE","role":"project-user","subject":"group:devs"}]`,
		`[{"role":"system-admin","subjects":["user:root","group:ops"]}]`,
		`{"name":"bob","password":"password1","groups":["devs"]}`,
		`{"password":"password2","groups":[]}`,
		`1h`, `2026-01-02T15:04:05Z`, `1700000000000`,
		`%zz`, `{"grant_type":`, `[]`, `null`, ``,
	} {
		for i := range iamDecoders {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) { fuzzDecoder(t, iamDecoders, which, body) })
}
