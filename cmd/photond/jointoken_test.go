package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJoinToken: the agent's join token comes from --join-token,
// --join-token-file or $PHOTON_JOIN_TOKEN (issue 26: on the command line
// only, every local user saw it in ps).
func TestJoinToken(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := file("token", "jt-from-file\n")
	empty := file("empty", " \n")
	big := file("big", strings.Repeat("x", maxJoinTokenFile+1))
	for _, tc := range []struct {
		name, flag, file, env string
		want, err             string
	}{
		{name: "none"},
		{name: "flag", flag: "jt-flag", want: "jt-flag"},
		{name: "file", file: good, want: "jt-from-file"},
		{name: "environment", env: "jt-env\n", want: "jt-env"},
		{name: "flag before environment", flag: "jt-flag", env: "jt-env", want: "jt-flag"},
		{name: "file before environment", file: good, env: "jt-env", want: "jt-from-file"},
		{name: "flag and file", flag: "jt-flag", file: good, err: "give one"},
		{name: "missing file", file: filepath.Join(dir, "nope"), err: "no such file"},
		{name: "empty file", file: empty, err: "is empty"},
		{name: "huge file", file: big, err: "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveJoinToken(tc.flag, tc.file, func(k string) string {
				if k == JoinTokenEnv {
					return tc.env
				}
				return ""
			})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestJoinTokenFlags: the agent's flags take the token file, and its help
// names the three ways and warns about ps.
func TestJoinTokenFlags(t *testing.T) {
	cmd := agentCmd(nil, nil)
	if err := cmd.ParseFlags([]string{"--join-token-file", "/etc/photon/join-token"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := cmd.Flags().GetString("join-token-file"); v != "/etc/photon/join-token" {
		t.Errorf("--join-token-file = %q", v)
	}
	help := cmd.Long + cmd.Flags().FlagUsages()
	for _, want := range []string{"--join-token-file", "PHOTON_JOIN_TOKEN", "ps"} {
		if !strings.Contains(help, want) {
			t.Errorf("agent help does not mention %q:\n%s", want, help)
		}
	}
}
