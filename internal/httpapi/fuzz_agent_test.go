package httpapi_test

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/httpapi"
)

// FuzzAgentStream feeds the controller's reading of a host's stream (its
// lines, api.ReadStreamLine, and each report, ParseStreamReport) hostile
// bytes: never a panic; each line is the input's next bytes, ends in a
// newline and is within the bound; a report accepted has Seq > 0.
func FuzzAgentStream(f *testing.F) {
	for _, s := range []string{
		`{"seq":1,"report":{"vms":[{"id":"v","state":"STARTED","generation":2}]}}` + "\n",
		`{"seq":2,"report":{"partial":true,"deletedDisks":["d"],"images":["i"]}}` + "\n" + `{"seq":3,"report":{}}` + "\n",
		`{"seq":0,"report":{}}` + "\n",
		`{"seq":-5}` + "\n",
		`{"seq":1,"report":{"vms":null}}`,
		"\n\n",
		`{"seq":1e400}` + "\n",
		`{"seq":1,"report":{"vms":[` + strings.Repeat(`{},`, 100) + `{}]}}` + "\n",
		strings.Repeat("x", 300) + "\n" + `{"seq":1}` + "\n",
	} {
		f.Add([]byte(s))
	}
	const max = 256
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(b), 16)
		read := 0
		for {
			line, err := api.ReadStreamLine(br, max)
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) && bytes.IndexByte(b[read:min(len(b), read+max)], '\n') >= 0 {
					t.Fatalf("a line within %d bytes refused as too long", max)
				}
				return
			}
			if len(line) == 0 || len(line) > max || line[len(line)-1] != '\n' || bytes.IndexByte(line, '\n') != len(line)-1 {
				t.Fatalf("line %q: want one line of 1-%d bytes ending in its newline", line, max)
			}
			if !bytes.Equal(line, b[read:read+len(line)]) {
				t.Fatalf("line %q is not the input's next bytes", line)
			}
			read += len(line)
			m, err := httpapi.ParseStreamReport(line)
			var ae *api.Error
			switch {
			case err == nil && m.Seq <= 0:
				t.Fatalf("report with seq %d accepted", m.Seq)
			case err != nil && !errors.As(err, &ae):
				t.Fatalf("refused with %T %v, want an *api.Error", err, err)
			}
		}
	})
}
