package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// testOVF is a VMware-style descriptor: the DiskSection lists the data disk
// first, the hardware the boot disk first.
func testOVF(memUnits, memQty string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="data.vmdk" ovf:id="file2"/>
    <File ovf:href="boot.vmdk" ovf:id="file1"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk2" ovf:fileRef="file2"/>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"/>
  </DiskSection>
  <VirtualSystem ovf:id="appliance">
    <Info>A virtual machine</Info>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>` + memUnits + `</rasd:AllocationUnits>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>` + memQty + `</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>1</rasd:AddressOnParent>
        <rasd:HostResource>ovf:/disk/vmdisk2</rasd:HostResource>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`
}

func settings(kv ...string) []api.ImageSetting {
	out := []api.ImageSetting{}
	for i := 0; i < len(kv); i += 2 {
		out = append(out, api.ImageSetting{Name: kv[i], DefaultValue: kv[i+1]})
	}
	return out
}

func TestParseOVF(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ovf      string
		disk     string
		settings []api.ImageSetting
		err      string
	}{
		{"vmware", testOVF("byte * 2^20", "2048"), "boot.vmdk", settings("cpu", "2", "memoryMb", "2048"), ""},
		{"GiB", testOVF("byte * 2^30", "2"), "boot.vmdk", settings("cpu", "2", "memoryMb", "2048"), ""},
		{"virtualbox MegaBytes", testOVF("MegaBytes", "512"), "boot.vmdk", settings("cpu", "2", "memoryMb", "512"), ""},
		{"KiB product", testOVF("byte*1024", "1048577"), "boot.vmdk", settings("cpu", "2", "memoryMb", "1025"), ""},
		{"decimal", testOVF("byte * 10^6", "1000"), "boot.vmdk", settings("cpu", "2", "memoryMb", "954"), ""},
		{"unknown units: no hint", testOVF("furlongs", "3"), "boot.vmdk", settings("cpu", "2"), ""},
		{"bad quantity: no hint", testOVF("byte * 2^20", "-1"), "boot.vmdk", settings("cpu", "2"), ""},
		{"no hardware disk: the DiskSection's first",
			strings.ReplaceAll(testOVF("MB", "64"), "<rasd:ResourceType>17</rasd:ResourceType>", "<rasd:ResourceType>15</rasd:ResourceType>"),
			"data.vmdk", settings("cpu", "2", "memoryMb", "64"), ""},
		{"file host resource", strings.Replace(testOVF("MB", "64"), "ovf:/disk/vmdisk1", "ovf:/file/file2", 1), "data.vmdk", settings("cpu", "2", "memoryMb", "64"), ""},
		{"in a collection", `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
			<References><File ovf:id="f" ovf:href="sub/d.vmdk"/></References>
			<DiskSection><Disk ovf:diskId="d" ovf:fileRef="f"/></DiskSection>
			<VirtualSystemCollection><VirtualSystemCollection><VirtualSystem ovf:id="x"><VirtualHardwareSection>
			<Item><ResourceType>3</ResourceType><VirtualQuantity>4</VirtualQuantity></Item>
			<Item><ResourceType>17</ResourceType><HostResource>/disk/d</HostResource></Item>
			</VirtualHardwareSection></VirtualSystem></VirtualSystemCollection></VirtualSystemCollection></Envelope>`,
			"sub/d.vmdk", settings("cpu", "4"), ""},
		{"missing disk", strings.Replace(testOVF("MB", "64"), "ovf:/disk/vmdisk1", "ovf:/disk/nope", 1), "", nil, `names disk "nope"`},
		{"no disks", `<Envelope><VirtualSystem/></Envelope>`, "", nil, "names no disk"},
		{"remote file", strings.Replace(testOVF("MB", "64"), `ovf:href="boot.vmdk"`, `ovf:href="http://example.com/boot.vmdk"`, 1), "", nil, "not inside the OVA"},
		{"bad compression", strings.Replace(testOVF("MB", "64"), `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:compression="xz"`, 1), "", nil, "compression"},
		{"not xml", "<Envelope><References>", "", nil, "not valid XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := parseOVF([]byte(tc.ovf), "x.ovf")
			if tc.err != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != CodeInvalidImage || !strings.Contains(ae.Message, tc.err) {
					t.Fatalf("err = %v, want InvalidImage with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.diskFile != tc.disk || !reflect.DeepEqual(plan.settings, tc.settings) {
				t.Errorf("disk %q settings %+v, want %q %+v", plan.diskFile, plan.settings, tc.disk, tc.settings)
			}
		})
	}
}

type member struct {
	name string
	body []byte
}

func writeTar(t *testing.T, p string, ms ...member) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, m := range ms {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReadOVA reads OVAs' members without qemu-img: the boot disk is
// extracted (gunzipped, chunks joined, checked against the manifest).
func TestReadOVA(t *testing.T) {
	dir := t.TempDir()
	s := &Service{MaxUploadSize: 1 << 20, dir: dir}
	boot := bytes.Repeat([]byte("boot disk "), 1000)
	sum := sha256.Sum256(boot)
	ovf := testOVF("byte * 2^20", "2048")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(boot)
	zw.Close()
	chunked := strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:chunkSize="4000"`, 1)
	mf := func(file string, b []byte) member {
		s := sha256.Sum256(b)
		return member{"x.mf", []byte(fmt.Sprintf("SHA256(%s)= %s\nSHA1(other)= 00\n", file, hex.EncodeToString(s[:])))}
	}
	for _, tc := range []struct {
		name    string
		members []member
		err     string
	}{
		{"plain", []member{{"x.ovf", []byte(ovf)}, mf("x.ovf", []byte(ovf)), {"./data.vmdk", []byte("data")}, {"boot.vmdk", boot}}, ""},
		{"manifest of the disk", []member{{"x.ovf", []byte(ovf)}, mf("boot.vmdk", boot), {"boot.vmdk", boot}}, ""},
		{"gzip", []member{{"x.ovf", []byte(strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:compression="gzip"`, 1))}, {"boot.vmdk", gz.Bytes()}}, ""},
		{"chunked", []member{{"x.ovf", []byte(chunked)}, {"boot.vmdk.000000000", boot[:4000]}, {"boot.vmdk.000000001", boot[4000:8000]}, {"boot.vmdk.000000002", boot[8000:]}}, ""},
		{"chunks out of order", []member{{"x.ovf", []byte(chunked)}, {"boot.vmdk.000000001", boot[4000:8000]}, {"boot.vmdk.000000000", boot[:4000]}}, "comes before"},
		{"no ovf", []member{{"boot.vmdk", boot}}, "no OVF descriptor"},
		{"missing disk file", []member{{"x.ovf", []byte(ovf)}, {"data.vmdk", []byte("data")}}, `names disk file "boot.vmdk"`},
		{"descriptor mismatch", []member{{"x.ovf", []byte(ovf)}, mf("x.ovf", []byte("other")), {"boot.vmdk", boot}}, "does not match its descriptor"},
		{"disk mismatch", []member{{"x.ovf", []byte(ovf)}, mf("boot.vmdk", []byte("other")), {"boot.vmdk", boot}}, "does not match its manifest"},
		{"not gzip", []member{{"x.ovf", []byte(strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:compression="gzip"`, 1))}, {"boot.vmdk", boot}}, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ova, out := filepath.Join(dir, "a.ova"), filepath.Join(dir, "disk")
			writeTar(t, ova, tc.members...)
			plan, err := readOVA(ova)
			if err == nil {
				err = s.extractDisk(ova, plan, out, s.stepBudget("the disk", 1<<20, -1))
			}
			if tc.err != "" {
				var ae *api.Error
				if !errors.As(err, &ae) || ae.Code != CodeInvalidImage || !strings.Contains(ae.Message, tc.err) {
					t.Fatalf("err = %v, want InvalidImage with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(out)
			if g := sha256.Sum256(got); g != sum {
				t.Errorf("extracted %d bytes, want the boot disk's %d", len(got), len(boot))
			}
			if want := settings("cpu", "2", "memoryMb", "2048"); !reflect.DeepEqual(plan.settings, want) {
				t.Errorf("settings %+v", plan.settings)
			}
		})
	}
	// Larger than the size limit once gunzipped.
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 2<<20))
	zw.Close()
	ova := filepath.Join(dir, "bomb.ova")
	writeTar(t, ova, member{"x.ovf", []byte(strings.Replace(ovf, `ovf:href="boot.vmdk"`, `ovf:href="boot.vmdk" ovf:compression="gzip"`, 1))}, member{"boot.vmdk", bomb.Bytes()})
	plan, err := readOVA(ova)
	if err == nil {
		err = s.extractDisk(ova, plan, filepath.Join(dir, "disk"), s.stepBudget("the disk", 1<<20, -1))
	}
	if !errors.Is(err, &api.Error{Code: CodeInvalidImage}) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("gzip bomb: %v", err)
	}
}
