package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/photon-cloud/photon/api"
)

var (
	fuzzSecret = []byte("0123456789abcdef0123456789abcdef")
	fuzzNow    = time.Unix(1_800_000_000, 0)
)

func fuzzKey(kid string) ([]byte, error) {
	if kid != "k1" {
		return nil, errors.New("no such key")
	}
	return fuzzSecret, nil
}

// fuzzToken signs claims with method and header kid (the seeds).
func fuzzToken(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzParseAccess feeds parseAccess (every access token a request
// carries) hostile tokens: never a panic; a refusal is InvalidAuthToken or
// ExpiredAuthToken; a token accepted is HS256 with a known kid, signed
// with its key, from our issuer and unexpired.
func FuzzParseAccess(f *testing.F) {
	rc := func(iss string, exp time.Time) claims {
		return claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Subject: "user:alice", ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt: jwt.NewNumericDate(fuzzNow), NotBefore: jwt.NewNumericDate(fuzzNow.Add(-time.Minute))}, Sid: "s1"}
	}
	later := fuzzNow.Add(time.Hour)
	for _, s := range []string{
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "k1", rc(issuer, later)),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "k1", rc(issuer, fuzzNow.Add(-time.Hour))),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "k1", rc("someone-else", later)),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "k2", rc(issuer, later)),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "", rc(issuer, later)),
		fuzzToken(f, jwt.SigningMethodHS512, fuzzSecret, "k1", rc(issuer, later)),
		fuzzToken(f, jwt.SigningMethodHS256, []byte("wrong"), "k1", rc(issuer, later)),
		fuzzToken(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", rc(issuer, later)),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "k1", jwt.MapClaims{"iss": issuer, "sid": 5}),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, "k1", jwt.MapClaims{"iss": issuer, "exp": "soon"}),
		fuzzToken(f, jwt.SigningMethodHS256, fuzzSecret, strings.Repeat("k", 65), rc(issuer, later)),
		"", ".", "..", "a.b.c", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9.e30.", strings.Repeat("A", 5000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := parseAccess(token, func() time.Time { return fuzzNow }, fuzzKey)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || (ae.Code != api.CodeInvalidAuthToken && ae.Code != api.CodeExpiredAuthToken) {
				t.Fatalf("refused with %v, want InvalidAuthToken or ExpiredAuthToken", err)
			}
			return
		}
		if c.Issuer != issuer || c.ExpiresAt == nil || !c.ExpiresAt.After(fuzzNow) {
			t.Fatalf("accepted claims %+v: want issuer %q and unexpired", c, issuer)
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts", len(parts))
		}
		var hdr struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		}
		p := jwt.NewParser()
		b, err := p.DecodeSegment(parts[0])
		if err != nil || json.Unmarshal(b, &hdr) != nil || hdr.Alg != "HS256" || hdr.Kid != "k1" {
			t.Fatalf("accepted header %s (%v): want HS256 with kid k1", b, err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("accepted signature %q: %v", parts[2], err)
		}
		m := hmac.New(sha256.New, fuzzSecret)
		m.Write([]byte(parts[0] + "." + parts[1]))
		if !hmac.Equal(sig, m.Sum(nil)) {
			t.Fatal("accepted a token its key did not sign")
		}
	})
}

// The seeds' verdicts: only the well-formed token is accepted.
func TestParseAccess(t *testing.T) {
	c := func(iss string, exp time.Time) claims {
		return claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Subject: "user:alice", ExpiresAt: jwt.NewNumericDate(exp)}, Sid: "s1"}
	}
	later := fuzzNow.Add(time.Hour)
	for _, tc := range []struct {
		name, token, code string
	}{
		{"good", fuzzToken(t, jwt.SigningMethodHS256, fuzzSecret, "k1", c(issuer, later)), ""},
		{"expired", fuzzToken(t, jwt.SigningMethodHS256, fuzzSecret, "k1", c(issuer, fuzzNow.Add(-time.Second))), api.CodeExpiredAuthToken},
		{"expired, wrong key", fuzzToken(t, jwt.SigningMethodHS256, []byte("wrong"), "k1", c(issuer, fuzzNow.Add(-time.Second))), api.CodeInvalidAuthToken},
		{"other issuer", fuzzToken(t, jwt.SigningMethodHS256, fuzzSecret, "k1", c("x", later)), api.CodeInvalidAuthToken},
		{"no exp", fuzzToken(t, jwt.SigningMethodHS256, fuzzSecret, "k1", jwt.MapClaims{"iss": issuer}), api.CodeInvalidAuthToken},
		{"unknown kid", fuzzToken(t, jwt.SigningMethodHS256, fuzzSecret, "k2", c(issuer, later)), api.CodeInvalidAuthToken},
		{"HS512", fuzzToken(t, jwt.SigningMethodHS512, fuzzSecret, "k1", c(issuer, later)), api.CodeInvalidAuthToken},
		{"alg none", fuzzToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", c(issuer, later)), api.CodeInvalidAuthToken},
		{"too long", strings.Repeat("a", maxTokenBytes+1), api.CodeInvalidAuthToken},
	} {
		_, err := parseAccess(tc.token, func() time.Time { return fuzzNow }, fuzzKey)
		var ae *api.Error
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.code != "" && (!errors.As(err, &ae) || ae.Code != tc.code):
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}
