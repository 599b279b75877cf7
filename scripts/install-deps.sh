#!/usr/bin/env bash
# install-deps.sh: install what Photon's build and tests need on Debian 12.
#
# Idempotent: installs only packages that are missing, and runs apt-get update
# only when something is missing. Runs as root (CI runs it on a clean clone).
# Go modules are not fetched here; `make deps` runs `go mod download` after.
set -euo pipefail

# Debian packages the tests need, one a line: "package  # why".
# To add one, add a line.
PACKAGES=(
	etcd-server     # etcd 3.4 binary (/usr/bin/etcd): tests start their own external etcd on free ports
	ca-certificates # TLS roots for go mod download
	curl            # e2e tests and scripts talk to the API
	jq              # scripts and docs read JSON
	iproute2        # ip netns / veth for multi-host tests
	qemu-system-x86 # the qemu driver runs real VMs (software emulation when KVM does not work)
	qemu-utils      # qemu-img: qcow2 overlays and disks of the qemu driver
	busybox-static  # scripts/build-test-image.sh: the guest's userland and its initramfs cpio; netplumb tests: ping, udhcpc
	linux-image-cloud-amd64 # scripts/build-test-image.sh: the guest kernel (virtio as modules)
	syslinux        # scripts/build-test-image.sh: boot loader installed on a FAT image via mtools
	syslinux-common # scripts/build-test-image.sh: syslinux's BIOS modules (ldlinux.c32)
	mtools          # scripts/build-test-image.sh: FAT image without loop mounts
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
	SUDO=sudo
else
	SUDO=
fi

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
	log "installing: ${missing[*]}"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	log "all Debian packages present"
fi

# The etcd-server package ships a systemd unit that runs a member on the
# default ports (2379/2380) with data in /var/lib/etcd. Tests never use it:
# they start their own etcd on free ports. Stop it where systemd runs so it
# does not hold those ports or disk; set PHOTON_KEEP_ETCD_SERVICE=1 to keep it.
if [[ ${PHOTON_KEEP_ETCD_SERVICE:-0} != 1 ]] && [[ -d /run/systemd/system ]] &&
	command -v systemctl >/dev/null; then
	if systemctl is-enabled --quiet etcd.service 2>/dev/null ||
		systemctl is-active --quiet etcd.service 2>/dev/null; then
		log "disabling the packaged etcd.service (tests start their own etcd)"
		$SUDO systemctl disable --now etcd.service >/dev/null 2>&1 || true
	fi
fi

command -v etcd >/dev/null || { log "etcd not found on PATH after install"; exit 1; }

# Go: the machine image has it at /usr/local/go.
if ! command -v go >/dev/null; then
	if [[ -x /usr/local/go/bin/go ]]; then
		export PATH="/usr/local/go/bin:$PATH"
		log "go not on PATH; use /usr/local/go/bin (add it to PATH in your shell)"
	else
		log "Go is missing: install Go (see go.mod for the version) at /usr/local/go"
		exit 1
	fi
fi
log "$(go version)"
