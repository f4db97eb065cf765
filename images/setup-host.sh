#!/usr/bin/env bash
# Prepares a Debian 12 host for Sandbox: installs the host packages, installs vhost-device-vsock (only packaged in
# Debian unstable; fetched under a private apt configuration, the system's sources are never touched) and downloads
# (does not install) the Debian 6.1 kernel package the guest image is built from.
# Idempotent: anything already present is skipped, and `apt-get update` runs only when something must be fetched.
#
# Environment:
#   SANDBOX_CACHE_DIR  where downloads are kept (default /var/cache/sandbox)
set -euo pipefail

cache_dir=${SANDBOX_CACHE_DIR:-/var/cache/sandbox}
kernel_dir=$cache_dir/kernel
unstable_dir=$cache_dir/apt-unstable
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
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
          containernetworking-plugins iproute2 util-linux python3 binutils debian-archive-keyring)
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

# The Debian mirror the system already uses for the release (read from apt's own view of the sources).
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || die "VERSION_CODENAME missing from /etc/os-release"
system_mirror() {
    apt-get indextargets --format '$(RELEASE) $(IDENTIFIER) $(REPO_URI)' 2>/dev/null \
        | awk -v rel="$codename" '$1 == rel && $2 == "Packages" { print $3; exit }'
}

# --- 2. vhost-device-vsock from Debian unstable (private apt configuration) -------------------------------------
if is_installed vhost-device-vsock; then
    say "vhost-device-vsock: present ($(dpkg-query -W -f='${Version}' vhost-device-vsock))"
else
    mirror=$(system_mirror)
    [ -n "$mirror" ] || die "no apt source for '$codename' found (apt-get indextargets); cannot derive the Debian mirror"
    [ -r "$keyring" ] || die "$keyring missing (package debian-archive-keyring)"
    mkdir -p "$unstable_dir/lists/partial" "$unstable_dir/cache/archives/partial"
    make_download_dir "$unstable_dir/debs"
    printf 'deb [signed-by=%s] %s unstable main\n' "$keyring" "$mirror" > "$unstable_dir/sources.list"
    private_apt=(-o "Dir::Etc::sourcelist=$unstable_dir/sources.list" -o Dir::Etc::sourceparts=-
                 -o "Dir::State::Lists=$unstable_dir/lists" -o "Dir::Cache=$unstable_dir/cache"
                 -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
                 -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
                 -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
                 -o Acquire::Languages=none)
    say "vhost-device-vsock: fetching the unstable package index from $mirror (private config in $unstable_dir)"
    apt-get "${private_apt[@]}" update -qq \
        || die "apt-get update of the private unstable sources ($unstable_dir/sources.list) failed"
    rm -f "$unstable_dir"/debs/vhost-device-vsock_*.deb
    (cd "$unstable_dir/debs" && apt-get "${private_apt[@]}" download -qq vhost-device-vsock) \
        || die "apt-get download vhost-device-vsock from unstable failed"
    deb=$(ls "$unstable_dir"/debs/vhost-device-vsock_*.deb)
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
if [ -f "$kernel_dir/$deb_name" ] && [ "$(sha256sum < "$kernel_dir/$deb_name" | cut -d' ' -f1)" = "$expected_sha" ]; then
    say "kernel: $kernel_package $version already downloaded"
else
    make_download_dir "$kernel_dir/.download"
    rm -f "$kernel_dir/.download"/*.deb
    say "kernel: downloading $kernel_package $version"
    (cd "$kernel_dir/.download" && apt-get download -qq "$kernel_package=$version") \
        || die "apt-get download $kernel_package=$version failed"
    chown root:root "$kernel_dir/.download/$deb_name"
    mv "$kernel_dir/.download/$deb_name" "$kernel_dir/$deb_name"
    say "kernel: saved $kernel_dir/$deb_name"
fi
# A stable name for the build script (images/build-image.sh reads it by default).
[ "$(readlink "$kernel_dir/linux-image.deb" 2>/dev/null)" = "$deb_name" ] || ln -sfn "$deb_name" "$kernel_dir/linux-image.deb"
for old in "$kernel_dir"/linux-image-*-unsigned_*.deb; do
    [ -f "$old" ] && [ "${old##*/}" != "$deb_name" ] && { rm -f "$old"; say "kernel: removed the superseded ${old##*/}"; }
done
say "kernel: $kernel_dir/linux-image.deb -> $deb_name (sha256 $expected_sha)"
say "done"
