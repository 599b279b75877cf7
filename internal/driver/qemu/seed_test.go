package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostname(t *testing.T) {
	for _, tc := range []struct{ name, id, want string }{
		{"web1", "x", "web1"},
		{"Seed Test_VM", "x", "seed-test-vm"},
		{"--", "vm-01.a", "vm-01-a"},
		{"", "", "photon-vm"},
		{strings.Repeat("a", 70), "x", strings.Repeat("a", 63)},
		{"ünïcode", "x", "ncode"},
	} {
		if got := hostname(tc.name, tc.id); got != tc.want {
			t.Errorf("hostname(%q, %q) = %q, want %q", tc.name, tc.id, got, tc.want)
		}
	}
}

// TestSeed writes a seed ISO and reads it back: meta-data, generated
// user-data with SSH keys and environment, verbatim user-data and
// network-config.
func TestSeed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")
	files := seedFiles("vm-1", "Web 1", map[string]string{"B": "2", "A": "x y"},
		map[string]string{MetaSSHKeys: "ssh-ed25519 AAAA one\n\nssh-rsa BBBB two\n"}, nil, nil)
	if err := writeSeed(path, files); err != nil {
		t.Fatal(err)
	}
	md, err := readSeedFile(path, "meta-data")
	if err != nil || string(md) != "instance-id: vm-1\nlocal-hostname: web-1\n" {
		t.Errorf("meta-data = %q, %v", md, err)
	}
	ud, err := readSeedFile(path, "user-data")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#cloud-config\n", "hostname: web-1\n", `  - "ssh-ed25519 AAAA one"`, `  - "ssh-rsa BBBB two"`,
		"path: /etc/photon/environment", `content: "A=x y\nB=2\n"`} {
		if !strings.Contains(string(ud), want) {
			t.Errorf("user-data lacks %q:\n%s", want, ud)
		}
	}
	if _, err := readSeedFile(path, "network-config"); err == nil {
		t.Error("a network-config nobody asked for")
	}

	files = seedFiles("vm-2", "b", nil, map[string]string{MetaUserData: "#!/bin/sh\necho hi\n", MetaNetworkConfig: "version: 2\n"}, nil, nil)
	if err := writeSeed(path, files); err != nil {
		t.Fatal(err)
	}
	if ud, _ := readSeedFile(path, "user-data"); string(ud) != "#!/bin/sh\necho hi\n" {
		t.Errorf("verbatim user-data = %q", ud)
	}
	if nc, _ := readSeedFile(path, "network-config"); string(nc) != "version: 2\n" {
		t.Errorf("network-config = %q", nc)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("seed dir holds %d files, want only seed.iso (no temporary files)", len(entries))
	}
}

func TestTrimLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	b := make([]byte, logLimit+10)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	trimLog(path)
	got, _ := os.ReadFile(path)
	if len(got) != logKeep || string(got) != string(b[len(b)-logKeep:]) {
		t.Errorf("after trimLog: %d bytes, want the last %d", len(got), logKeep)
	}
	trimLog(path) // small enough now: unchanged
	if again, _ := os.ReadFile(path); len(again) != logKeep {
		t.Errorf("trimLog of a small log changed it")
	}
}
