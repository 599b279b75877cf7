package httpapi_test

import (
	"errors"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/compute"
	"github.com/photon-cloud/photon/internal/httpapi"
	"github.com/photon-cloud/photon/internal/network"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// decoders are what the handlers do with a request body before touching
// state: decode, then validate.
var decoders = []func([]byte) error{
	func(b []byte) error {
		var s api.TenantCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return tenancy.ValidateTenantSpec(&s)
	},
	func(b []byte) error {
		var s api.ProjectCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return tenancy.ValidateProjectSpec(&s)
	},
	func(b []byte) error {
		var s api.FlavorCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return tenancy.ValidateFlavorSpec(&s)
	},
	func(b []byte) error {
		var s api.QuotaSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return s.Validate("quota")
	},
	func(b []byte) error {
		_, err := api.ParseLimits(string(b))
		return err
	},
	func(b []byte) error {
		var s api.VMCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return compute.ValidateVMSpec(&s)
	},
	func(b []byte) error {
		var s api.VMBatchCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		return compute.ValidateVMBatch(&s.VMCreateSpec, s.Count)
	},
	func(b []byte) error {
		var s api.RouterCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		_, err := network.ValidateRouterSpec(&s)
		return err
	},
	func(b []byte) error {
		var s api.SubnetCreateSpec
		if err := httpapi.DecodeBody(b, &s); err != nil {
			return err
		}
		_, err := network.ValidateSubnetSpec(&s)
		return err
	},
}

// FuzzDecoders: no body makes a decoder panic or yield anything but nil or
// a 4xx API error.
func FuzzDecoders(f *testing.F) {
	for _, seed := range []string{
		`{"name":"t1","quota":{"quotaItems":{"vm.cpu":{"limit":10,"unit":"COUNT"}}}}`,
		`{"name":"p1","defaultRouterPrivateIpCidr":"10.0.0.0/8","securityGroups":["a"]}`,
		`{"name":"small","kind":"vm","cost":[{"key":"vm.cpu","value":1,"unit":"COUNT"},{"key":"vm.memory","value":2,"unit":"GB"}]}`,
		`{"quotaItems":{"vm.memory":{"limit":1e400,"unit":"GB"}}}`,
		`vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB`,
		`{"name":"web","flavor":"small","attachedDisks":[{"name":"boot","kind":"ephemeral-disk","flavor":"eph","bootDisk":true}],"count":10}`,
		`{"name":"web","flavor":"small","attachedDisks":[{"name":"boot","kind":"ephemeral-disk","flavor":"eph","capacityGb":-1}],"count":-5}`,
		`{"name":"r1","privateIpCidr":"192.168.0.1/16"}`,
		`{"name":"web","privateIpCidr":"10.10.1.0/24","type":"NO_NAT","dnsServerAddresses":["1.1.1.1","fe80::1%eth0"]}`,
		`{"name":"web","flavor":"small","subnets":["a","a"],"attachedDisks":[{"name":"boot","kind":"ephemeral-disk","flavor":"eph","bootDisk":true}]}`,
		`{"name":`, `[]`, `null`, ``, `{"name":"a"} {}`,
	} {
		for i := range decoders {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) { fuzzDecoder(t, decoders, which, body) })
}

// fuzzDecoder runs one of decoders on body: it must give nil or an API
// error with a 4xx status and a message, never anything else.
func fuzzDecoder(t *testing.T, decoders []func([]byte) error, which uint8, body []byte) {
	err := decoders[int(which)%len(decoders)](body)
	if err == nil {
		return
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("decoder %d: non-API error %v for %q", which, err, body)
	}
	if s := ae.Status(); s < 400 || s >= 500 || ae.Message == "" {
		t.Fatalf("decoder %d: status %d %+v for %q", which, s, ae, body)
	}
}
