package client_test

import (
	"testing"

	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestDecodeMatchesEncodingJSON: the client decodes a response as
// encoding/json would, and refuses what it refuses.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	photontest.CheckDecoder(t, client.DecodeBody)
}
