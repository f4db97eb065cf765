#!/usr/bin/env bash
# Builds the Sandbox guest image from our own kernel (images/build-kernel.sh), the Debian kernel package (the generic
# kernel: the fallback and the bench's fixed floor), the host's busybox-static, the guest userland (crun and the
# libraries it and the agent load, Debian packages of a pinned release: images/guest-packages) and the agent.
#
#   images/build-image.sh OUT_DIR AGENT_BINARY OWN_KERNEL_DIR
#
# OWN_KERNEL_DIR is images/build-kernel.sh's output (vmlinux, config, kernel-release, manifest.txt).
#
# Outputs (in OUT_DIR):
#   vmlinux                 our kernel, uncompressed PVH ELF, no modules (the default)
#   initramfs.cpio          uncompressed newc initramfs: busybox, crun + libs, agent, init (no kernel modules)
#   kernel-release          our kernel's release string (6.1.x-sandbox)
#   kernel-config           our kernel's .config
#   vmlinux-generic         Debian's generic kernel (from the .deb's vmlinuz), uncompressed PVH ELF
#   initramfs-generic.cpio  the same initramfs plus the generic kernel's modules + modules.dep
#   kernel-release-generic  its release string (e.g. 6.1.0-57-amd64), the directory name under /lib/modules
#   manifest.txt            every input with version and sha256, every file in the cpios, the sha256 of the outputs
#
# Inputs (environment, all optional):
#   KERNEL_DEB         kernel package (default /var/cache/sandbox/kernel/linux-image.deb, made by setup-host.sh)
#   BUSYBOX            static busybox (default /bin/busybox)
#   GUEST_USERLAND     list of the guest userland's .debs, "release package version sha256 path" lines (default
#                      /var/cache/sandbox/guest-userland/packages.txt, made by setup-host.sh)
#   SOURCE_DATE_EPOCH  mtime of every file in the cpio (default: the vmlinuz mtime recorded in the kernel package)
#
# The build is reproducible (same inputs, same bytes) and is skipped when the inputs match the existing manifest.
# Must run as root (the cpio carries a /dev/console device node).
set -euo pipefail
export LC_ALL=C

die() { printf 'build-image: ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf 'build-image: %s\n' "$*"; }

[ $# -eq 3 ] || die "usage: $0 OUT_DIR AGENT_BINARY OWN_KERNEL_DIR"
out_dir=$1
agent=$2
own_kernel_dir=$3
images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kernel_deb=${KERNEL_DEB:-/var/cache/sandbox/kernel/linux-image.deb}
busybox=${BUSYBOX:-/bin/busybox}
userland_list=${GUEST_USERLAND:-/var/cache/sandbox/guest-userland/packages.txt}

# Modules in the image; their dependencies are added automatically. The init loads only virtio_mmio/virtio_pci, the
# vsock transport and virtio_balloon (free page reporting hands freed guest memory back to the host); the agent loads
# the rest on demand (modprobe 9pnet_virtio 9p, overlay, virtio_net). bridge: for privileged pods (`brctl addbr`, `ip link
# add type bridge`), which the kernel loads on first use through /sbin/modprobe, as on a host.
guest_modules=(virtio_mmio virtio_pci vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport virtio_balloon
               9pnet 9pnet_virtio netfs fscache 9p overlay virtio_net bridge)

[ "$(id -u)" -eq 0 ] || die "must run as root (mknod of /dev/console for the initramfs)"
for tool in dpkg-deb dpkg-query tar xz cpio depmod modinfo readelf ldd sha256sum od; do
    command -v "$tool" >/dev/null || die "'$tool' not found; run images/setup-host.sh"
done
[ -f "$kernel_deb" ] || die "kernel package $kernel_deb not found; run images/setup-host.sh (or set KERNEL_DEB)"
[ -f "$agent" ] || die "agent binary $agent not found; build the agent first (make agent)"
for f in vmlinux config kernel-release manifest.txt; do
    [ -f "$own_kernel_dir/$f" ] || die "$own_kernel_dir/$f not found; build our kernel first (images/build-kernel.sh $own_kernel_dir, or make kernel)"
done
[ -x "$busybox" ] || die "busybox $busybox not found (package busybox-static)"
[ -f "$userland_list" ] || die "guest userland list $userland_list not found; run images/setup-host.sh (or set GUEST_USERLAND)"
"$busybox" --list-full >/dev/null 2>&1 || die "$busybox is not a busybox multi-call binary"
kernel_deb=$(readlink -f "$kernel_deb")
agent=$(readlink -f "$agent")
busybox=$(readlink -f "$busybox")

sha() { sha256sum "$1" | cut -d' ' -f1; }

# The guest userland's packages, checked against the sha256 setup-host.sh recorded.
userland_debs=()
while read -r release package version deb_sha deb; do
    [ -f "$deb" ] || die "$deb ($package $version from Debian $release) is missing; run images/setup-host.sh"
    [ "$(sha "$deb")" = "$deb_sha" ] || die "$deb does not match the sha256 in $userland_list; run images/setup-host.sh"
    userland_debs+=("$deb")
done < "$userland_list"
grep -q ' crun ' "$userland_list" || die "$userland_list names no crun package"

# --- Input key: skip the build when nothing changed ------------------------------------------------------------
kernel_sha=$(sha "$kernel_deb")
inputs=$(
    printf 'kernel-deb %s\n' "$kernel_sha"
    printf 'own-kernel %s %s\n' "$(sha "$own_kernel_dir/vmlinux")" "$(sha "$own_kernel_dir/config")"
    printf 'agent %s\n' "$(sha "$agent")"
    printf 'busybox %s\n' "$(sha "$busybox")"
    cat "$userland_list"
    for f in build-image.sh init floor-init; do printf 'script %s %s\n' "$f" "$(sha "$images_dir/$f")"; done
    printf 'source-date-epoch %s\n' "${SOURCE_DATE_EPOCH:-from-kernel}"
    printf 'modules %s\n' "${guest_modules[*]}"
)
input_key=$(sha256sum <<<"$inputs" | cut -d' ' -f1)
if [ -f "$out_dir/manifest.txt" ] && grep -qx "input-key $input_key" "$out_dir/manifest.txt" \
   && [ -f "$out_dir/vmlinux" ] && [ -f "$out_dir/initramfs.cpio" ] && [ -f "$out_dir/kernel-release" ] \
   && [ -f "$out_dir/vmlinux-generic" ] && [ -f "$out_dir/initramfs-generic.cpio" ]; then
    # Refresh the mtimes so make sees the outputs as newer than the inputs it tracks (the bytes are unchanged).
    touch "$out_dir/vmlinux" "$out_dir/initramfs.cpio" "$out_dir/kernel-release" "$out_dir/manifest.txt" \
        "$out_dir/vmlinux-generic" "$out_dir/initramfs-generic.cpio" "$out_dir/kernel-release-generic" "$out_dir/kernel-config"
    say "up to date: $out_dir (input-key $input_key)"
    exit 0
fi

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
work=$(mktemp -d "$out_dir/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- Kernel: extract, find the release, decompress the bzImage payload to the PVH vmlinux ----------------------
say "extracting $kernel_deb"
kernel_package=$(dpkg-deb -f "$kernel_deb" Package)
kernel_package_version=$(dpkg-deb -f "$kernel_deb" Version)
mkdir "$work/kernel"
dpkg-deb --fsys-tarfile "$kernel_deb" | tar -x -C "$work/kernel" ./boot ./lib/modules \
    || die "cannot extract ./boot and ./lib/modules from $kernel_deb"
releases=$(ls "$work/kernel/lib/modules")
[ "$(wc -w <<<"$releases")" -eq 1 ] || die "expected one kernel release in $kernel_deb, found: $releases"
kernel_release=$releases
vmlinuz=$work/kernel/boot/vmlinuz-$kernel_release
[ -f "$vmlinuz" ] || die "$kernel_deb has no boot/vmlinuz-$kernel_release"
: "${SOURCE_DATE_EPOCH:=$(stat -c %Y "$vmlinuz")}"

u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
[ "$(od -An -c -j $((0x202)) -N4 "$vmlinuz" | tr -d ' ')" = HdrS ] || die "$vmlinuz is not a bzImage (no HdrS header)"
setup_sects=$(u8 "$vmlinuz" $((0x1f1)))
[ "$setup_sects" -eq 0 ] && setup_sects=4
payload_offset=$(( (setup_sects + 1) * 512 + $(u32 "$vmlinuz" $((0x248))) ))
payload_length=$(u32 "$vmlinuz" $((0x24c)))
[ "$(od -An -tx1 -j "$payload_offset" -N6 "$vmlinuz" | tr -d ' ')" = fd377a585a00 ] \
    || die "$vmlinuz: the bzImage payload at offset $payload_offset is not xz (only xz kernels are supported)"
# The payload is the xz stream followed by the 4-byte little-endian uncompressed size.
expected_size=$(u32 "$vmlinuz" $((payload_offset + payload_length - 4)))
say "decompressing vmlinux (xz payload at offset $payload_offset, $payload_length bytes)"
dd if="$vmlinuz" iflag=skip_bytes,count_bytes skip="$payload_offset" count=$((payload_length - 4)) status=none \
    | xz -dc > "$work/vmlinux" \
    || die "xz decompression of the $vmlinuz payload failed"
[ "$(stat -c %s "$work/vmlinux")" -eq "$expected_size" ] \
    || die "vmlinux is $(stat -c %s "$work/vmlinux") bytes, the bzImage says $expected_size"
readelf -h "$work/vmlinux" 2>/dev/null | grep -q 'Class:[[:space:]]*ELF64' || die "vmlinux is not an ELF64 file"
# XEN_ELFNOTE_PHYS32_ENTRY (0x12) is the PVH entry point QEMU boots through.
readelf -n "$work/vmlinux" 2>/dev/null | grep -Eq '^[[:space:]]*Xen[[:space:]].*\(0x00000012\)' \
    || die "vmlinux has no PVH entry note (Xen note 0x12); QEMU cannot boot it with -kernel"

# The last LOAD segment ends with .bss, .brk and .init.scratch, which the bzImage's vmlinux stores as ~23 MB of zero
# bytes (p_filesz = p_memsz because .init.scratch is PROGBITS). QEMU keeps the kernel file mapped for the VM's whole
# life and reads the whole p_filesz, so those zeros cost host page cache in every VM's memory. Ending p_filesz where
# .bss starts gives the guest the same memory (QEMU and the ELF rules fill p_memsz beyond p_filesz with zeros), but
# only after checking that those bytes really are all zero.
trim_zero_tail() {
    local phoff load_index load_offset load_filesz bss_offset load_end new_filesz patched_filesz
    phoff=$(readelf -hW "$1" | awk -F: '/Start of program headers/ {print $2+0}')
    read -r load_index load_offset load_filesz < <(readelf -lW "$1" \
        | awk '/^ *[A-Z_]+ +0x/ {n++} $1 == "LOAD" {i = n - 1; off = $2; fsz = $5} END {print i, off, fsz}')
    bss_offset=$(readelf -SW "$1" | sed 's/^ *\[ *[0-9]*\]//' | awk '$1 == ".bss" {print "0x" $4}')
    [ -n "$phoff" ] && [ -n "$load_index" ] && [ -n "$bss_offset" ] || die "cannot read the program headers or .bss of $1"
    load_end=$((load_offset + load_filesz))
    if (( bss_offset > load_offset && bss_offset < load_end )) \
        && cmp -s -n $((load_end - bss_offset)) -i "$((bss_offset)):0" "$1" /dev/zero; then
        new_filesz=$((bss_offset - load_offset))
        printf "$(printf '%016x' "$new_filesz" | sed -E 's/(..)/\1 /g' | awk '{for (i = NF; i >= 1; i--) printf "\\x%s", $i}')" \
            | dd of="$1" bs=1 seek=$((phoff + load_index * 56 + 32)) conv=notrunc status=none
        patched_filesz=$(readelf -lW "$1" | awk '$1 == "LOAD" {fsz = $5} END {print fsz}')
        (( patched_filesz == new_filesz )) || die "patching ${1##*/}'s last LOAD p_filesz failed (reads $patched_filesz)"
        say "${1##*/}: last LOAD segment's file size $load_filesz -> $(printf '0x%x' "$new_filesz") (its zero tail is left to p_memsz)"
    else
        say "${1##*/}: the last LOAD segment's tail after .bss is not all zero; left as it is"
    fi
}
trim_zero_tail "$work/vmlinux"

# Our kernel: checked like the generic one, and trimmed the same way.
own_kernel_release=$(cat "$own_kernel_dir/kernel-release")
cp "$own_kernel_dir/vmlinux" "$work/vmlinux-own"
readelf -n "$work/vmlinux-own" 2>/dev/null | grep -Eq '^[[:space:]]*Xen[[:space:]].*\(0x00000012\)' \
    || die "$own_kernel_dir/vmlinux has no PVH entry note (Xen note 0x12); QEMU cannot boot it with -kernel"
grep -qx 'CONFIG_MODULES=y' "$own_kernel_dir/config" && die "$own_kernel_dir/config has CONFIG_MODULES=y; our kernel is built without modules"
trim_zero_tail "$work/vmlinux-own"

# --- Root filesystem staging -----------------------------------------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,lib64,etc,dev,proc,sys,run,tmp,mnt,root,var,newroot}
mknod -m 600 "$root/dev/console" c 5 1

# Modules: the requested ones plus their dependency closure (from modinfo), then depmod on the staged copy.
modules_src=$work/kernel/lib/modules/$kernel_release
modules_dst=$root/lib/modules/$kernel_release
declare -A module_path=()
while IFS= read -r path; do
    name=${path##*/}; name=${name%.ko}; name=${name//-/_}
    module_path[$name]=$path
done < <(cd "$modules_src" && find kernel -name '*.ko' | sort)
declare -A module_included=()
pending=("${guest_modules[@]}")
while [ ${#pending[@]} -gt 0 ]; do
    name=${pending[0]//-/_}; pending=("${pending[@]:1}")
    [ -n "${module_included[$name]:-}" ] && continue
    if [ -z "${module_path[$name]:-}" ]; then
        grep -q "/$name.ko\$" "$modules_src/modules.builtin" && { module_included[$name]=builtin; continue; }
        die "module $name is neither in $kernel_package nor built in"
    fi
    module_included[$name]=${module_path[$name]}
    deps=$(modinfo -F depends "$modules_src/${module_path[$name]}")
    [ -n "$deps" ] && IFS=, read -r -a more <<<"$deps" && pending+=("${more[@]}")
done
for name in "${!module_included[@]}"; do
    rel=${module_included[$name]}
    [ "$rel" = builtin ] && continue
    mkdir -p "$modules_dst/$(dirname "$rel")"
    cp "$modules_src/$rel" "$modules_dst/$rel"
done
cp "$modules_src/modules.builtin" "$modules_src/modules.builtin.modinfo" "$modules_dst/"
grep -Fx -f <(cd "$modules_dst" && find kernel -name '*.ko') "$modules_src/modules.order" > "$modules_dst/modules.order" || true
# (Debian's boot/System.map is a placeholder, so depmod cannot check symbols; modinfo's "depends" comes from modpost.)
depmod_log=$(depmod -b "$root" "$kernel_release" 2>&1) || die "depmod failed: $(head -n 5 <<<"$depmod_log")"
[ -z "$depmod_log" ] || die "depmod reports problems with the module set: $(head -n 5 <<<"$depmod_log")"

# busybox and its applet links.
cp "$busybox" "$root/bin/busybox"
while IFS= read -r applet; do
    [ "$applet" = linuxrc ] && continue
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full | sort)

# crun and the libraries it and the agent need, from the guest userland's packages: the closure of their DT_NEEDED
# entries, copied to the guest's /usr/lib/x86_64-linux-gnu (where the loader looks without an ld.so.cache), and the
# loader at the path in their PT_INTERP.
userland=$work/userland
mkdir "$userland"
for deb in "${userland_debs[@]}"; do dpkg-deb -x "$deb" "$userland" || die "cannot extract $deb"; done
crun=$userland/usr/bin/crun
[ -x "$crun" ] || die "the guest userland's packages have no usr/bin/crun"
library_dirs=("$userland/usr/lib/x86_64-linux-gnu" "$userland/lib/x86_64-linux-gnu")
needed_of() { readelf -dW "$1" | awk '$2 == "(NEEDED)" { gsub(/[][]/, "", $5); print $5 }'; }
declare -A library_source=()
pending=("$crun" "$agent")
while [ ${#pending[@]} -gt 0 ]; do
    file=${pending[0]}; pending=("${pending[@]:1}")
    for soname in $(needed_of "$file"); do
        [ -n "${library_source[$soname]:-}" ] && continue
        found=
        for dir in "${library_dirs[@]}"; do [ -e "$dir/$soname" ] && { found=$(readlink -f "$dir/$soname"); break; }; done
        [ -n "$found" ] || die "${file##*/} needs $soname, which no package of $userland_list provides: add its package to images/guest-packages"
        library_source[$soname]=$found
        pending+=("$found")
    done
done
for soname in "${!library_source[@]}"; do cp "${library_source[$soname]}" "$root/usr/lib/x86_64-linux-gnu/$soname"; done
for binary in "$crun" "$agent"; do
    interp=$(readelf -lW "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
    [ "$interp" = /lib64/ld-linux-x86-64.so.2 ] || die "${binary##*/} asks for the loader $interp; expected /lib64/ld-linux-x86-64.so.2"
done
[ -n "${library_source[ld-linux-x86-64.so.2]:-}" ] || die "the loader ld-linux-x86-64.so.2 is not in the library closure (package libc6)"
ln -s ../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
cp "$crun" "$root/usr/bin/crun"
cp "$agent" "$root/sbin/sandbox-agent"

# The root of the guest process that holds a pod's namespaces when containerd's Sandbox API starts the pod
# (shim/Sandbox.Shim/Vm/GuestPodNamespaces.cs): busybox (a hard link, no extra bytes) and mount points, read-only.
pod_root=$root/usr/share/sandbox/pod-namespaces
mkdir -p "$pod_root"/{bin,proc,dev}
ln "$root/bin/busybox" "$pod_root/bin/busybox"

# init, floor-init, minimal /etc.
cp "$images_dir/init" "$root/init"
cp "$images_dir/floor-init" "$root/sbin/floor-init"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$root/etc/group"
# Mounted by the init in one `mount -a` (the rest need directories inside the fresh devtmpfs first).
cat > "$root/etc/fstab" <<'EOF'
devtmpfs /dev           devtmpfs nosuid,noexec,mode=0755     0 0
proc     /proc          proc     nosuid,nodev,noexec         0 0
sysfs    /sys           sysfs    nosuid,nodev,noexec         0 0
cgroup2  /sys/fs/cgroup cgroup2  nosuid,nodev,noexec         0 0
tmpfs    /run           tmpfs    nosuid,nodev,mode=0755      0 0
tmpfs    /tmp           tmpfs    nosuid,nodev,mode=1777      0 0
EOF
cat > "$root/etc/fstab.dev" <<'EOF'
devpts   /dev/pts       devpts   nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 0 0
tmpfs    /dev/shm       tmpfs    nosuid,nodev,mode=1777      0 0
EOF

# Normalise modes, owners and times.
chmod 0755 "$root/init" "$root/sbin/floor-init" "$root/sbin/sandbox-agent" "$root/usr/bin/crun" "$root/bin/busybox"
chmod 1777 "$root/tmp"
find "$root" -type d ! -path "$root/tmp" -exec chmod 0755 {} +
find "$root" -type f -perm -u+x -exec chmod 0755 {} +
find "$root" -type f ! -perm -u+x -exec chmod 0644 {} +
chown -hR 0:0 "$root"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

write_cpio() {
    (cd "$root" && find . -print0 | sort -z | cpio --quiet --null --reproducible -H newc -o -R 0:0) > "$1" \
        || die "cpio of $1 failed"
}
say "writing initramfs-generic.cpio (with the generic kernel's modules)"
write_cpio "$work/initramfs-generic.cpio"
# Our kernel has no modules: its initramfs is the same without /lib/modules.
mv "$root/lib/modules" "$work/generic-modules"
say "writing initramfs.cpio (for our kernel: no modules)"
write_cpio "$work/initramfs.cpio"
mv "$work/generic-modules" "$root/lib/modules"
mv "$work/vmlinux" "$work/vmlinux-generic"
mv "$work/vmlinux-own" "$work/vmlinux"
printf '%s\n' "$kernel_release" > "$work/kernel-release-generic"
printf '%s\n' "$own_kernel_release" > "$work/kernel-release"
cp "$own_kernel_dir/config" "$work/kernel-config"

outputs="vmlinux initramfs.cpio kernel-release kernel-config vmlinux-generic initramfs-generic.cpio kernel-release-generic"

# --- Manifest --------------------------------------------------------------------------------------------------
# dpkg knows files by their pre-merged-/usr paths (/lib/..., /bin/...), so try those too.
package_of() {
    local p
    for p in "$1" "${1#/usr}"; do
        dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1 | grep . && return 0
    done
    return 0
}
version_of() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null; }
describe_file() {
    local pkg; pkg=$(package_of "$1")
    printf '%s sha256 %s package %s %s\n' "$1" "$(sha "$1")" "${pkg:--}" "$( [ -n "$pkg" ] && version_of "$pkg")"
}
{
    echo "# Sandbox guest image manifest (images/build-image.sh)"
    echo "input-key $input_key"
    echo "source-date-epoch $SOURCE_DATE_EPOCH"
    echo "kernel-package $kernel_package $kernel_package_version sha256 $kernel_sha file $kernel_deb"
    echo "kernel-release-generic $kernel_release"
    sed -n '/^#/!s/^/own-kernel /p' "$own_kernel_dir/manifest.txt"
    echo "busybox $(describe_file "$busybox")"
    while read -r release package version deb_sha deb; do
        echo "guest-package $package $version release $release sha256 $deb_sha file $deb"
    done < "$userland_list"
    echo "crun /usr/bin/crun sha256 $(sha "$crun") package $(awk '$2 == "crun" { print "crun", $3, "of Debian", $1 }' "$userland_list")"
    echo "agent $agent sha256 $(sha "$agent")"
    for soname in $(printf '%s\n' "${!library_source[@]}" | sort); do
        echo "library $soname sha256 $(sha "${library_source[$soname]}") from ${library_source[$soname]#$userland}"
    done
    for f in build-image.sh init floor-init; do echo "script images/$f sha256 $(sha "$images_dir/$f")"; done
    echo "modules-requested ${guest_modules[*]}"
    echo "modules-included $(printf '%s\n' "${!module_included[@]}" | sort | tr '\n' ' ')"
    echo "# initramfs contents (initramfs.cpio has all but /lib/modules; initramfs-generic.cpio has all): type mode path sha256|target|device"
    (cd "$root" && find . -print0 | sort -z | while IFS= read -r -d '' f; do
        mode=$(stat -c %a "$f")
        if [ -L "$f" ]; then echo "l $mode ${f#.} -> $(readlink "$f")"
        elif [ -d "$f" ]; then echo "d $mode ${f#.}"
        elif [ -c "$f" ]; then echo "c $mode ${f#.} $(stat -c '%t:%T' "$f")"
        else echo "f $mode ${f#.} $(sha "$f")"; fi
    done)
    echo "# outputs"
    for f in $outputs; do
        echo "output $f sha256 $(sha "$work/$f") size $(stat -c %s "$work/$f")"
    done
} > "$work/manifest.txt"

for f in $outputs manifest.txt; do mv -f "$work/$f" "$out_dir/$f"; done
say "built $out_dir: our kernel $own_kernel_release with initramfs.cpio ($(stat -c %s "$out_dir/initramfs.cpio") bytes)," \
    "generic kernel $kernel_release with initramfs-generic.cpio ($(stat -c %s "$out_dir/initramfs-generic.cpio") bytes)"
grep '^output ' "$out_dir/manifest.txt" | sed 's/^/build-image: /'
