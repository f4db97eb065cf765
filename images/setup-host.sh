#!/usr/bin/env bash
# Prepares a Debian 12 host for Sandbox: installs the host packages, installs vhost-device-vsock (only packaged in
# Debian unstable; fetched under a private apt configuration, the system's sources are never touched) and downloads
# (does not install) the Debian 6.1 kernel package the guest image is built from, the containerd releases of the test
# matrix (1.7 from trixie, 2.x from unstable; extracted privately) and the guest's crun with its libraries (trixie).
# Idempotent: anything already present is skipped, and `apt-get update` runs only when something must be fetched.
#
# Environment:
#   SANDBOX_CACHE_DIR  where downloads are kept (default /var/cache/sandbox)
set -euo pipefail

cache_dir=${SANDBOX_CACHE_DIR:-/var/cache/sandbox}
kernel_dir=$cache_dir/kernel
export DEBIAN_FRONTEND=noninteractive

say() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages with apt-get and dpkg)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 (bookworm) only"

apt_updated=no
apt_update_once() {
    if [ "$apt_updated" = no ]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed: check network access to the Debian mirror in /etc/apt/sources.list.d/"
        apt_updated=yes
    fi
}

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# A download directory the unprivileged _apt user can write to (apt drops privileges for downloads).
make_download_dir() {
    mkdir -p "$1"
    if id _apt >/dev/null 2>&1; then chown _apt:root "$1"; fi
}

# --- 1. Host packages -------------------------------------------------------------------------------------------
packages=(qemu-system-x86 busybox-static crun containerd runc gcc zlib1g-dev cpio kmod xz-utils
          containernetworking-plugins iproute2 util-linux python3 binutils debian-archive-keyring
          iptables docker-registry skopeo python3-prometheus-client make bc flex bison libelf-dev libssl-dev patch)
# iptables: port-forward into a pod's VM (a REDIRECT in the pod's network namespace); docker-registry and skopeo:
# `make conformance`'s private registry for critest's images; python3-prometheus-client: its text-format parser checks
# `sandboxctl metrics` in the tests; make, bc, flex, bison, libelf-dev, libssl-dev, patch: building the guest kernel
# (images/build-kernel.sh)
missing=()
for p in "${packages[@]}"; do
    is_installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    say "host packages: all present (${packages[*]})"
else
    apt_update_once
    say "installing: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
    say "installed: ${missing[*]}"
fi

# Other Debian releases (trixie, unstable) through private apt configurations: images/debian-archive.sh.
. "$(dirname "${BASH_SOURCE[0]}")/debian-archive.sh"

# --- 2. vhost-device-vsock from Debian unstable (private apt configuration) -------------------------------------
if is_installed vhost-device-vsock; then
    say "vhost-device-vsock: present ($(dpkg-query -W -f='${Version}' vhost-device-vsock))"
else
    deb=$(debian_download unstable vhost-device-vsock)
    say "vhost-device-vsock: installing $deb"
    dpkg -i "$deb" || die "dpkg -i $deb failed (it needs libc6 >= 2.34 and libgcc-s1)"
    say "vhost-device-vsock: installed ($(dpkg-query -W -f='${Version}' vhost-device-vsock))"
fi

# --- 3. The guest kernel package (downloaded, not installed) ----------------------------------------------------
candidate_of() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2; exit }'; }
version=$(candidate_of linux-image-amd64)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    apt_update_once
    version=$(candidate_of linux-image-amd64)
fi
[ -n "$version" ] && [ "$version" != "(none)" ] || die "linux-image-amd64 has no candidate version in the apt sources"
abi_package=$(apt-cache depends "linux-image-amd64=$version" 2>/dev/null \
    | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')
[ -n "$abi_package" ] || die "cannot find the linux-image-<abi>-amd64 dependency of linux-image-amd64 $version"
kernel_package=$abi_package-unsigned
kernel_version=$(candidate_of "$kernel_package")
[ "$kernel_version" = "$version" ] \
    || die "$kernel_package candidate is '$kernel_version', expected $version (same as linux-image-amd64)"
deb_name=${kernel_package}_${version//:/%3a}_amd64.deb
expected_sha=$(apt-cache show "$kernel_package=$version" | awk '/^SHA256:/ { print $2; exit }')
# Downloads PACKAGE=VERSION as DIR/DEB_NAME unless a file with SHA256 is already there (LABEL names it in messages).
download_verified_deb() {
    local label=$1 package=$2 version=$3 dir=$4 deb_name=$5 sha=$6
    if [ -f "$dir/$deb_name" ] && [ "$(sha256sum < "$dir/$deb_name" | cut -d' ' -f1)" = "$sha" ]; then
        say "$label: $package $version already downloaded"
        return 0
    fi
    make_download_dir "$dir/.download"
    rm -f "$dir/.download"/*.deb
    say "$label: downloading $package $version"
    (cd "$dir/.download" && apt-get download -qq "$package=$version") || die "apt-get download $package=$version failed"
    chown root:root "$dir/.download/$deb_name"
    mv "$dir/.download/$deb_name" "$dir/$deb_name"
    say "$label: saved $dir/$deb_name"
}
download_verified_deb kernel "$kernel_package" "$version" "$kernel_dir" "$deb_name" "$expected_sha"
# A stable name for the build script (images/build-image.sh reads it by default).
[ "$(readlink "$kernel_dir/linux-image.deb" 2>/dev/null)" = "$deb_name" ] || ln -sfn "$deb_name" "$kernel_dir/linux-image.deb"
for old in "$kernel_dir"/linux-image-*-unsigned_*.deb; do
    [ -f "$old" ] && [ "${old##*/}" != "$deb_name" ] && { rm -f "$old"; say "kernel: removed the superseded ${old##*/}"; }
done
say "kernel: $kernel_dir/linux-image.deb -> $deb_name (sha256 $expected_sha)"

# --- 3b. The guest kernel's source (linux-source-6.1, the same Debian version as the kernel package) -------------
# images/build-kernel.sh builds our own guest kernel from it.
source_package=linux-source-$(printf '%s' "$version" | cut -d. -f1,2)
source_dir=$cache_dir/kernel-source
source_deb=${source_package}_${version//:/%3a}_all.deb
source_sha=$(apt-cache show "$source_package=$version" 2>/dev/null | awk '/^SHA256:/ { print $2; exit }')
[ -n "$source_sha" ] || die "$source_package $version is not in the apt sources (the guest kernel is built from it)"
download_verified_deb "kernel source" "$source_package" "$version" "$source_dir" "$source_deb" "$source_sha"
[ "$(readlink "$source_dir/linux-source.deb" 2>/dev/null)" = "$source_deb" ] || ln -sfn "$source_deb" "$source_dir/linux-source.deb"
for old in "$source_dir"/linux-source-*_*.deb; do
    [ -f "$old" ] && [ "${old##*/}" != "$source_deb" ] && { rm -f "$old"; say "kernel source: removed the superseded ${old##*/}"; }
done
say "kernel source: $source_dir/linux-source.deb -> $source_deb (sha256 $source_sha)"

# --- 4. containerd releases for the test matrix (extracted privately, never installed) --------------------------
# 1.6 is the system's package (Debian 12), 1.7 comes from Debian 13 (trixie), 2.x from unstable. Their .debs need only
# libc >= 2.34, so the binaries run here. Each release gets $cache_dir/containerd/<label>/bin with containerd, ctr
# and containerd-shim-runc-v2 (tests put it first on PATH), and one line in $cache_dir/containerd/manifest.txt.
containerd_dir=$cache_dir/containerd
mkdir -p "$containerd_dir"
binaries_sha() { local b; for b in containerd ctr containerd-shim-runc-v2; do printf ' %s %s' "$b" "$(sha256sum < "$1/$b" | cut -d' ' -f1)"; done; }
manifest=()
mkdir -p "$containerd_dir/1.6/bin"
for b in containerd ctr containerd-shim-runc-v2; do
    [ -x "/usr/bin/$b" ] || die "/usr/bin/$b missing (package containerd)"
    ln -sfn "/usr/bin/$b" "$containerd_dir/1.6/bin/$b"
done
manifest+=("1.6 bookworm containerd $(dpkg-query -W -f='${Version}' containerd) deb-sha256 - installed /usr/bin$(binaries_sha /usr/bin)")
for entry in 1.7:trixie 2:unstable; do
    label=${entry%%:*} release=${entry#*:}
    deb=$(debian_download "$release" containerd)
    version=$(dpkg-deb -f "$deb" Version)
    target=$containerd_dir/$label
    if [ "$(cat "$target/package-version" 2>/dev/null)" != "$version" ] || [ ! -x "$target/bin/containerd" ]; then
        rm -rf "$target" "$target.new"
        mkdir -p "$target.new/extract" "$target.new/bin"
        dpkg-deb -x "$deb" "$target.new/extract" || die "cannot extract $deb"
        for b in containerd ctr containerd-shim-runc-v2; do
            mv "$target.new/extract/usr/bin/$b" "$target.new/bin/$b" || die "$deb has no usr/bin/$b"
        done
        rm -rf "$target.new/extract"
        printf '%s\n' "$version" > "$target.new/package-version"
        mv "$target.new" "$target"
        say "containerd $label: extracted $version from Debian $release into $target/bin"
    else
        say "containerd $label: $version present in $target/bin"
    fi
    "$target/bin/containerd" --version >/dev/null 2>&1 \
        || die "$target/bin/containerd does not run on this host (the .deb of Debian $release needs libc >= 2.34)"
    manifest+=("$label $release containerd $version deb-sha256 $(sha256sum < "$deb" | cut -d' ' -f1) extracted $target/bin$(binaries_sha "$target/bin")")
done
printf '%s\n' "# containerd releases of the test matrix: label release package version deb-sha256 sha from binaries sha256" \
    "${manifest[@]}" > "$containerd_dir/manifest.txt"
say "containerd matrix: $(printf '%s\n' "${manifest[@]}" | awk '{printf "%s=%s ", $1, $4}')(manifest $containerd_dir/manifest.txt)"

# --- 5. The guest's crun and its libraries (images/guest-packages; downloaded, not installed) -------------------
# images/build-image.sh extracts them into the initramfs. packages.txt lists what is here: release package version
# sha256 file.
userland_dir=$cache_dir/guest-userland
mkdir -p "$userland_dir"
userland=()
while read -r release package; do
    case $release in ''|'#'*) continue ;; esac
    deb=$(debian_download "$release" "$package")
    userland+=("$release $package $(dpkg-deb -f "$deb" Version) $(sha256sum < "$deb" | cut -d' ' -f1) $deb")
done < "$(dirname "${BASH_SOURCE[0]}")/guest-packages"
printf '%s\n' "${userland[@]}" > "$userland_dir/packages.txt.new"
mv "$userland_dir/packages.txt.new" "$userland_dir/packages.txt"
say "guest userland: $(printf '%s\n' "${userland[@]}" | awk '{printf "%s %s, ", $2, $3}')(list $userland_dir/packages.txt)"
# --- 6. gVisor's runsc from Debian unstable (extracted privately, never installed) --------------------------------
# The peer `make bench` measures side by side: an OCI runtime run under containerd's runc shim (--runc-binary). A
# static binary; $cache_dir/gvisor/bin/runsc, its version in $cache_dir/gvisor/package-version.
gvisor_dir=$cache_dir/gvisor
deb=$(debian_download unstable runsc)
version=$(dpkg-deb -f "$deb" Version)
if [ "$(cat "$gvisor_dir/package-version" 2>/dev/null)" != "$version" ] || [ ! -x "$gvisor_dir/bin/runsc" ]; then
    rm -rf "$gvisor_dir" "$gvisor_dir.new"
    mkdir -p "$gvisor_dir.new/extract" "$gvisor_dir.new/bin"
    dpkg-deb -x "$deb" "$gvisor_dir.new/extract" || die "cannot extract $deb"
    mv "$gvisor_dir.new/extract/usr/bin/runsc" "$gvisor_dir.new/bin/runsc" || die "$deb has no usr/bin/runsc"
    rm -rf "$gvisor_dir.new/extract"
    printf '%s\n' "$version" > "$gvisor_dir.new/package-version"
    mv "$gvisor_dir.new" "$gvisor_dir"
    say "gvisor: extracted runsc $version from Debian unstable into $gvisor_dir/bin"
else
    say "gvisor: runsc $version present in $gvisor_dir/bin"
fi
"$gvisor_dir/bin/runsc" --version >/dev/null 2>&1 || die "$gvisor_dir/bin/runsc does not run on this host"
say "done"
