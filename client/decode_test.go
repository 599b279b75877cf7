package client_test

import (
	"encoding/json"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestDecodeMatchesEncodingJSON: the client decodes a response as
// encoding/json would, and refuses what it refuses.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	photontest.CheckDecoder(t, client.DecodeJSON)
}

// BenchmarkDecodeDesiredState: a host agent decoding an answer with 20
// VMs, with the client's decoder and with encoding/json.
func BenchmarkDecodeDesiredState(b *testing.B) {
	ds := api.HostDesiredState{HostID: "h-1", Revision: 5, VMs: photontest.DesiredVMs(20), Images: []string{}, PartialReports: true, ReportOnPoll: true}
	body, err := json.Marshal(&ds)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []struct {
		name string
		fn   func([]byte, any) error
	}{{"client", client.DecodeJSON}, {"encoding-json", json.Unmarshal}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				var got api.HostDesiredState
				if err := d.fn(body, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
