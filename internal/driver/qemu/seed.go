package qemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/kdomanski/iso9660"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// Metadata keys the seed reads, besides the VM's name and id.
const (
	// MetaUserData, when set, is the VM's cloud-init user-data verbatim
	// (a #cloud-config document or a script); otherwise Photon writes a
	// #cloud-config with the hostname, SSH keys and environment.
	MetaUserData = "user-data"
	// MetaSSHKeys holds authorized SSH public keys, one a line.
	MetaSSHKeys = "ssh-keys"
	// MetaSSHKeysAlt is accepted too (cloud-init's own name).
	MetaSSHKeysAlt = "ssh_authorized_keys"
	// MetaNetworkConfig, when set, is the NoCloud network-config verbatim.
	MetaNetworkConfig = "network-config"
)

// seedFiles are the NoCloud files for a VM: meta-data (instance-id,
// local-hostname), user-data and, if given (metadata "network-config") or
// if the VM has NICs, network-config.
func seedFiles(id, name string, env, meta map[string]string, nics []api.NICDesired, subnets map[string]api.SubnetDesired) map[string][]byte {
	files := map[string][]byte{}
	host := hostname(name, id)
	files["meta-data"] = fmt.Appendf(nil, "instance-id: %s\nlocal-hostname: %s\n", id, host)
	if ud, ok := meta[MetaUserData]; ok {
		files["user-data"] = []byte(ud)
	} else {
		var b bytes.Buffer
		b.WriteString("#cloud-config\n")
		fmt.Fprintf(&b, "hostname: %s\n", host)
		var keys []string
		for _, k := range []string{MetaSSHKeys, MetaSSHKeysAlt} {
			for _, line := range strings.Split(meta[k], "\n") {
				if line = strings.TrimSpace(line); line != "" {
					keys = append(keys, line)
				}
			}
		}
		if len(keys) > 0 {
			b.WriteString("ssh_authorized_keys:\n")
			for _, k := range keys {
				fmt.Fprintf(&b, "  - %s\n", quote(k))
			}
		}
		if len(env) > 0 {
			names := make([]string, 0, len(env))
			for k := range env {
				names = append(names, k)
			}
			sort.Strings(names)
			var content strings.Builder
			for _, k := range names {
				fmt.Fprintf(&content, "%s=%s\n", k, env[k])
			}
			b.WriteString("write_files:\n  - path: /etc/photon/environment\n    permissions: \"0644\"\n")
			fmt.Fprintf(&b, "    content: %s\n", quote(content.String()))
		}
		files["user-data"] = b.Bytes()
	}
	if nc, ok := meta[MetaNetworkConfig]; ok {
		files["network-config"] = []byte(nc)
	} else if len(nics) > 0 {
		files["network-config"] = networkConfig(nics, subnets)
	}
	return files
}

// networkConfig is cloud-init's network configuration version 2 (the
// netplan format) of a VM's NICs, in order: NIC i is matched by its MAC
// and named eth<i>, with its address and its subnet's prefix length
// (DHCP if it has no address), MTU and DNS servers; the first NIC with a
// gateway holds the default route (one default route, whatever the
// number of NICs). Every string is quoted (a MAC of digits and colons
// would otherwise be a YAML 1.1 number). The NICs were validated
// (drivercore): their subnets are in subnets, their CIDRs parse.
func networkConfig(nics []api.NICDesired, subnets map[string]api.SubnetDesired) []byte {
	var b bytes.Buffer
	b.WriteString("version: 2\nethernets:\n")
	gateway := false
	for i, n := range nics {
		sub := subnets[n.SubnetID]
		mac, _ := drivercore.ParseMAC(n.MAC)
		name := fmt.Sprintf("eth%d", i)
		fmt.Fprintf(&b, "  %s:\n    match:\n      macaddress: %s\n    set-name: %s\n", name, quote(mac), quote(name))
		prefix, err := drivercore.SubnetPrefix(sub)
		if n.IP == "" || err != nil {
			b.WriteString("    dhcp4: true\n")
		} else {
			b.WriteString("    dhcp4: false\n")
			fmt.Fprintf(&b, "    addresses:\n      - %s\n", quote(fmt.Sprintf("%s/%d", n.IP, prefix.Bits())))
			if sub.Gateway != "" && !gateway {
				gateway = true
				fmt.Fprintf(&b, "    routes:\n      - to: %s\n        via: %s\n", quote("0.0.0.0/0"), quote(sub.Gateway))
			}
		}
		if len(sub.DNS) > 0 {
			b.WriteString("    nameservers:\n      addresses:\n")
			for _, d := range sub.DNS {
				fmt.Fprintf(&b, "        - %s\n", quote(d))
			}
		}
		if sub.MTU > 0 {
			fmt.Fprintf(&b, "    mtu: %d\n", sub.MTU)
		}
	}
	return b.Bytes()
}

// quote is a YAML double-quoted scalar (JSON's string syntax is valid YAML).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// hostname makes a DNS label of the VM's name (falling back to its id):
// lower case letters, digits and '-', at most 63 characters.
func hostname(name, id string) string {
	for _, s := range []string{name, id} {
		var b strings.Builder
		for _, r := range strings.ToLower(s) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
				b.WriteRune(r)
			case r == '-' || r == '_' || r == '.' || r == ' ':
				b.WriteByte('-')
			}
		}
		h := strings.Trim(b.String(), "-")
		if len(h) > 63 {
			h = strings.TrimRight(h[:63], "-")
		}
		if h != "" {
			return h
		}
	}
	return "photon-vm"
}

// writeSeed writes the NoCloud seed of a VM as an ISO 9660 volume
// labelled "cidata" at path (atomically: a temporary file, then rename).
func writeSeed(path string, files map[string][]byte) error {
	w, err := iso9660.NewWriter()
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer w.Cleanup()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.AddFile(bytes.NewReader(files[n]), n); err != nil {
			return fmt.Errorf("seed: %s: %w", n, err)
		}
	}
	err = drivercore.WriteFileAtomic(path, ".seed-*", func(f io.Writer) error { return w.WriteTo(f, "cidata") })
	var werr *drivercore.WriteError
	if errors.As(err, &werr) {
		err = werr.Err
	}
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// readSeedFile returns one file of a seed ISO (for tests and inspection).
func readSeedFile(path, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		return nil, err
	}
	root, err := img.RootDir()
	if err != nil {
		return nil, err
	}
	children, err := root.GetChildren()
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		if c.Name() == name {
			return io.ReadAll(c.Reader())
		}
	}
	return nil, fmt.Errorf("seed %s has no %s", path, name)
}
