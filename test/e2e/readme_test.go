package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/internal/photontest"
)

// TestReadmeWalkthrough runs the README's five-minute walkthrough, as
// written, against `photond dev` through bin/photon: the README's first
// shell block after "Five minutes with the CLI", with the controller's URL
// and data dir put in place of https://127.0.0.1:9000 and .data.
func TestReadmeWalkthrough(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Five minutes with the CLI")
	if i < 0 {
		t.Fatal("README has no \"Five minutes with the CLI\" section")
	}
	rest := readme[i:]
	start := strings.Index(rest, "```sh\n")
	end := strings.Index(rest[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no shell block in the walkthrough")
	}
	script := rest[start+6 : start+6+end]

	dir := t.TempDir()
	c := photontest.StartDev(t, filepath.Join(dir, "cloud"))
	script = strings.ReplaceAll(script, "https://127.0.0.1:9000", c.URL)
	script = strings.ReplaceAll(script, ".data/", c.DataDir+"/")
	script = strings.ReplaceAll(script, "export PATH=$PWD/bin:$PATH", "")
	// make run builds the guest image into the data dir; so does this test.
	build := exec.Command("./scripts/build-test-image.sh", filepath.Join(c.DataDir, "test-image.qcow2"))
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-test-image.sh: %v\n%s", err, out)
	}

	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = "../.." // the README's commands run from the repository's root
	cmd.Env = append(os.Environ(), "HOME="+dir, "PHOTON_CONFIG="+filepath.Join(dir, "photon-config"),
		"PATH="+filepath.Dir(photontest.Binary(t, "photon"))+":"+os.Getenv("PATH"))
	for _, v := range []string{"PHOTON_TARGET", "PHOTON_TOKEN", "PHOTON_CA_CERT"} {
		cmd.Env = append(cmd.Env, v+"=")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{"Created and started VM web1", "Attached disk data", "Deleted disk data", "CREATE_VM"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, out)
		}
	}
}
