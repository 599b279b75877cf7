#!/usr/bin/env bash
# build-test-image.sh OUT.qcow2: build a small bootable guest image for
# Photon's QEMU tests and demos, from Debian packages only.
#
#   kernel     linux-image-cloud-amd64 (virtio drivers as modules)
#   userland   busybox-static, in an initramfs made here with busybox cpio
#   boot       syslinux on an unpartitioned FAT image made with mtools
#              (no loop mounts, no root needed for the image itself)
#
# The guest's init loads the virtio, virtio-net, SCSI, ISO 9660 and ACPI
# button modules (in dependency order, from modules.dep), mounts the
# NoCloud seed (the ISO 9660 volume labelled cidata), prints to the serial
# console:
#
#   photon-test-image: instance-id: <id>
#   photon-test-image: local-hostname: <name>
#   photon-test-image: block-devices: vda vdb sda      (at boot and on every change)
#   photon-test-image: ready
#
# and then waits; on the ACPI power button (QMP system_powerdown) it prints
# "photon-test-image: power button, powering off" and powers off.
#
# Network (in the background, so "ready" does not wait for it): each NIC
# is brought up and configured by DHCP (busybox udhcpc: address, prefix,
# MTU, DNS; eth0 holds the default route), the real path a guest takes:
#
#   photon-net: eth0 up fa:16:3e:12:34:56
#   photon-net: eth0 10.10.1.5/24                      (its lease)
#   photon-net: eth0 no DHCP lease                     (none in 10 s)
#
# Then, for each address in PHOTON_PING (the VM's environment, which the
# seed's generated user-data carries, e.g. PHOTON_PING=10.10.1.6
# 10.10.2.5), it pings it (one packet at a time, up to PHOTON_PING_TRIES
# times, default 20, until one is answered) and prints
#
#   photon-ping: OK 10.10.1.6
#   photon-ping: FAIL 10.10.2.5
#
# and if the user-data is a script (#!), it runs it, its output on the
# console, and prints "photon-user-data: exit <status>". Multi-host tests
# read these lines from the consoles.
#
# Missing tools are installed with apt-get (idempotent). Set
# PHOTON_TEST_KERNEL to use a given vmlinuz (its modules must be under
# /lib/modules/<version>). The build takes a few seconds; the image is
# about 20 MB.
set -euo pipefail

log() { printf 'build-test-image: %s\n' "$*" >&2; }

out=${1:-}
if [[ -z $out ]]; then
	echo "usage: $0 OUT.qcow2" >&2
	exit 2
fi

# Tools, installed only when missing.
need=()
command -v busybox >/dev/null || need+=(busybox-static)
command -v mformat >/dev/null || need+=(mtools)
command -v syslinux >/dev/null || need+=(syslinux)
[[ -d /usr/lib/syslinux/modules/bios ]] || need+=(syslinux-common)
command -v qemu-img >/dev/null || need+=(qemu-utils)
compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null || [[ -n ${PHOTON_TEST_KERNEL:-} ]] || need+=(linux-image-cloud-amd64)
if ((${#need[@]})); then
	log "installing: ${need[*]}"
	SUDO=
	[[ $(id -u) -eq 0 ]] || SUDO=sudo
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# The kernel: the newest cloud kernel unless one is given.
kernel=${PHOTON_TEST_KERNEL:-}
if [[ -z $kernel ]]; then
	kernel=$(ls -1 /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)
fi
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[[ -r $kernel ]] || { log "cannot read $kernel"; exit 1; }
[[ -f $moddir/modules.dep ]] || { log "no $moddir/modules.dep for kernel $kver"; exit 1; }
busybox=$(command -v busybox)
# Debian's busybox-static is the static one; a dynamic busybox would not
# run in the initramfs.
if ! file_out=$(LC_ALL=C od -An -c -N 4 "$busybox") || [[ $file_out != *E*L*F* ]]; then
	log "$busybox is not an ELF binary"
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp,run,etc/acpi/PWRF,lib/modules}
cp "$busybox" "$root/bin/busybox"

# Modules in dependency order: each module after what it depends on
# (modules.dep lists a module's dependencies, nearest first).
wanted=(virtio_pci virtio_blk virtio_net virtio_scsi sd_mod isofs button evdev)
declare -A seen=()
order=()
dep_line() { grep -E "(^|/)$1\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n 1; }
add_module() {
	local name=$1 line path deps d
	[[ -n ${seen[$name]:-} ]] && return 0
	seen[$name]=1
	line=$(dep_line "$name") || true
	if [[ -z $line ]]; then
		# Built into this kernel (or absent): nothing to load.
		grep -qE "/$name\.ko" "$moddir/modules.builtin" 2>/dev/null ||
			log "module $name is neither in modules.dep nor built in; skipped"
		return 0
	fi
	path=${line%%:*}
	deps=${line#*:}
	for d in $deps; do
		d=${d##*/}
		d=${d%%.ko*}
		add_module "$d"
	done
	order+=("$path")
}
for m in "${wanted[@]}"; do
	add_module "$m"
done
# Module signatures are stripped: checking them costs the guest a few
# hundred milliseconds of emulated RSA at every boot, and Debian's kernel
# loads unsigned modules (without secure boot), tainting itself quietly.
strip_signature() {
	local f=$1 magic='~Module signature appended~' size siglen
	[[ $(tail -c 28 "$f" | head -c 27) == "$magic" ]] || return 0
	size=$(stat -c %s "$f")
	# struct module_signature (12 bytes) ends with sig_len, big-endian.
	siglen=$(tail -c 32 "$f" | head -c 4 | od -An -tu1 | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}')
	truncate -s $((size - 28 - 12 - siglen)) "$f"
}
: >"$root/etc/modules"
for p in "${order[@]}"; do
	f=${p##*/}
	case $f in
	*.ko) cp "$moddir/$p" "$root/lib/modules/$f" ;;
	*.ko.xz) xz -dc "$moddir/$p" >"$root/lib/modules/${f%.xz}"; f=${f%.xz} ;;
	*.ko.zst) zstd -qdc "$moddir/$p" >"$root/lib/modules/${f%.zst}"; f=${f%.zst} ;;
	*.ko.gz) gzip -dc "$moddir/$p" >"$root/lib/modules/${f%.gz}"; f=${f%.gz} ;;
	esac
	strip_signature "$root/lib/modules/$f"
	echo "$f" >>"$root/etc/modules"
done
log "kernel $kver, modules: $(tr '\n' ' ' <"$root/etc/modules")"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# Photon test image init: report the NoCloud seed, then wait for power-off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say() { echo "photon-test-image: $*" >/dev/console; }
for m in $(cat /etc/modules); do
	insmod "/lib/modules/$m" 2>/dev/null || say "insmod $m failed"
done
say "booted kernel $(uname -r)"
# The seed may take a moment to appear.
seed=
for try in 1 2 3 4 5 6 7 8 9 10; do
	for dev in /dev/vd? /dev/sd? /dev/sr?; do
		[ -b "$dev" ] || continue
		if mount -t iso9660 -o ro "$dev" /mnt 2>/dev/null; then
			if [ -f /mnt/meta-data ]; then
				seed=$dev
				break 2
			fi
			umount /mnt
		fi
	done
	sleep 0.2
done
if [ -n "$seed" ]; then
	iid=$(sed -n 's/^instance-id:[[:space:]]*//p' /mnt/meta-data | head -n 1)
	host=$(sed -n 's/^local-hostname:[[:space:]]*//p' /mnt/meta-data | head -n 1)
	say "seed: $seed"
	say "instance-id: $iid"
	say "local-hostname: $host"
	[ -n "$host" ] && hostname "$host"
	if [ -f /mnt/user-data ]; then
		say "user-data: $(wc -c </mnt/user-data) bytes"
		head -c 65536 /mnt/user-data >/run/user-data
	fi
	umount /mnt
else
	say "no NoCloud seed (cidata) found"
fi
# The network, in the background: DHCP on every NIC, then the pings of
# PHOTON_PING, then a user-data script.
network() {
	ip link set lo up
	for n in $(ls /sys/class/net); do
		[ "$n" = lo ] && continue
		ip link set "$n" up
		echo "photon-net: $n up $(cat /sys/class/net/$n/address)" >/dev/console
		(udhcpc -i "$n" -s /etc/udhcpc.script -O mtu -f -q -n -t 10 -T 1 -A 1 >/dev/null 2>&1 ||
			echo "photon-net: $n no DHCP lease" >/dev/console) &
	done
	wait
	# The environment as the generated user-data writes it: a quoted
	# string, a backslash-n between variables.
	targets=
	tries=20
	if [ -f /run/user-data ]; then
		targets=$(grep -o 'PHOTON_PING=[0-9. ]*' /run/user-data | head -n 1 | sed 's/^PHOTON_PING=//')
		t=$(grep -o 'PHOTON_PING_TRIES=[0-9]*' /run/user-data | head -n 1 | sed 's/^PHOTON_PING_TRIES=//')
		[ -n "$t" ] && tries=$t
	fi
	for a in $targets; do
		ok=
		i=0
		while [ "$i" -lt "$tries" ]; do
			if ping -c 1 -W 1 "$a" >/dev/null 2>&1; then
				ok=1
				break
			fi
			i=$((i + 1))
		done
		if [ -n "$ok" ]; then
			echo "photon-ping: OK $a" >/dev/console
		else
			echo "photon-ping: FAIL $a" >/dev/console
		fi
	done
	if [ -f /run/user-data ] && [ "$(head -c 2 /run/user-data)" = "#!" ]; then
		sh /run/user-data >/dev/console 2>&1
		echo "photon-user-data: exit $?" >/dev/console
	fi
}
network &
blocks() { ls /sys/block | grep -v '^loop' | tr '\n' ' ' | sed 's/ $//'; }
prev=$(blocks)
say "block-devices: $prev"
acpid -c /etc/acpi -l /tmp/acpid.log
say "ready"
# Report block devices whenever they change (hot-plug, unplug).
while true; do
	sleep 1
	cur=$(blocks)
	if [ "$cur" != "$prev" ]; then
		say "block-devices: $cur"
		prev=$cur
	fi
done
EOF
chmod 755 "$root/init"

# udhcpc's script: configure the NIC from the lease (busybox udhcpc sets
# $ip, $mask as a prefix length, $router, $dns and $mtu).
cat >"$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	if [ "$interface" = eth0 ] && [ -n "$router" ]; then
		ip route replace default via "${router%% *}" dev "$interface"
	fi
	if [ -n "$dns" ]; then
		: >/etc/resolv.conf
		for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	fi
	echo "photon-net: $interface $ip/${mask:-24}" >/dev/console
	;;
esac
exit 0
EOF
chmod 755 "$root/etc/udhcpc.script"

cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "photon-test-image: power button, powering off" >/dev/console
sync
poweroff -f
EOF
chmod 755 "$root/etc/acpi/PWRF/00000080"

# The initramfs, as busybox cpio (newc) wants it: names on stdin.
(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -9 >"$work/initrd.img"

cat >"$work/syslinux.cfg" <<'EOF'
DEFAULT photon
PROMPT 0
TIMEOUT 0
LABEL photon
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=ttyS0,115200 quiet loglevel=3 panic=10 mitigations=off lsm=capability audit=0 no_timer_check
EOF

# An unpartitioned FAT image: SeaBIOS boots syslinux's boot sector at
# sector 0. 48 MiB = 48 cylinders x 64 heads x 32 sectors.
fat=$work/boot.img
truncate -s 48M "$fat"
mformat -i "$fat" -t 48 -h 64 -s 32 -v PHOTONBOOT ::
syslinux --install "$fat"
mcopy -i "$fat" "$kernel" ::vmlinuz
mcopy -i "$fat" "$work/initrd.img" ::initrd.img
mcopy -i "$fat" "$work/syslinux.cfg" ::syslinux.cfg

mkdir -p "$(dirname "$out")"
qemu-img convert -q -f raw -O qcow2 "$fat" "$out.tmp"
mv "$out.tmp" "$out"
log "wrote $out ($(du -h "$out" | cut -f1))"
