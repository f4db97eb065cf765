#!/usr/bin/env bash
# Builds the Sandbox guest kernel: Debian's linux-source package, `make allnoconfig`, then the fragment
# images/kernel/sandbox-guest.config (merged with the kernel's scripts/kconfig/merge_config.sh, and checked: every line
# of the fragment must hold in the final .config), then `make vmlinux`. The source gets the patches in
# images/kernel/patches/*.patch first (in name order; each says why it is there).
#
#   images/build-kernel.sh OUT_DIR
#
# Outputs (in OUT_DIR):
#   vmlinux          the uncompressed PVH ELF kernel, symbols stripped
#   config           the full .config it was built with
#   kernel-release   its release string (6.1.x-sandbox)
#   manifest.txt     source package and version, its sha256, the fragment's sha256, each patch's sha256, the
#                    compiler, the build time, the sha256 of vmlinux and of config
#
# Inputs (environment, all optional):
#   KERNEL_SOURCE_DEB  linux-source-6.1 package (default /var/cache/sandbox/kernel-source/linux-source.deb, which
#                      images/setup-host.sh downloads)
#   KERNEL_BUILD_CACHE where builds are kept, one directory per input key (default /var/cache/sandbox/kernel-build)
#   JOBS               parallel jobs (default: the number of CPUs)
#
# The build is keyed by the sha256 of the source package, of the patches, of the resulting .config (so a comment in
# the fragment does not rebuild), the compiler's version and RECIPE (bumped when the steps below change), and kept under
# KERNEL_BUILD_CACHE/<key>: a second run with the same inputs copies the result (no compiler run). It is reproducible:
# the timestamp is the source package's date, user and host are fixed, and no debug information is built.
# The compiler's output goes to KERNEL_BUILD_CACHE/<key>/build.log; the terminal gets progress lines, and on failure
# the last lines of that log and its path.
set -euo pipefail
export LC_ALL=C

die() { printf 'build-kernel: ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf 'build-kernel: %s\n' "$*"; }

[ $# -eq 1 ] || die "usage: $0 OUT_DIR"
out_dir=$1
images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$images_dir/kernel/sandbox-guest.config
source_deb=${KERNEL_SOURCE_DEB:-/var/cache/sandbox/kernel-source/linux-source.deb}
cache=${KERNEL_BUILD_CACHE:-/var/cache/sandbox/kernel-build}
jobs=${JOBS:-$(nproc)}

for tool in dpkg-deb tar xz make gcc bc flex bison sha256sum objcopy readelf patch; do
    command -v "$tool" >/dev/null || die "'$tool' not found; run images/setup-host.sh"
done
[ -f /usr/include/gelf.h ] || die "libelf-dev is missing (objtool needs it); run images/setup-host.sh"
[ -f "$source_deb" ] || die "kernel source package $source_deb not found; run images/setup-host.sh (or set KERNEL_SOURCE_DEB)"
[ -f "$fragment" ] || die "$fragment is missing"
source_deb=$(readlink -f "$source_deb")

sha() { sha256sum "$1" | cut -d' ' -f1; }
source_package=$(dpkg-deb -f "$source_deb" Package)
source_version=$(dpkg-deb -f "$source_deb" Version)
source_sha=$(sha "$source_deb")
compiler=$(gcc --version | head -n1)
# The build steps' version: part of the key.
recipe=2
patches=("$images_dir"/kernel/patches/*.patch)
[ -e "${patches[0]}" ] || patches=()
# One line per patch (name and sha256), in the order they are applied: part of the key and of the manifest.
patch_list=$(for p in "${patches[@]}"; do printf '%s sha256 %s\n' "kernel/patches/$(basename "$p")" "$(sha "$p")"; done)
patch_sha=$(printf '%s' "$patch_list" | sha256sum | cut -c1-12)

publish() {
    mkdir -p "$out_dir"
    local f
    for f in vmlinux config kernel-release manifest.txt; do
        cp "$build/$f" "$out_dir/$f.new" && mv "$out_dir/$f.new" "$out_dir/$f"
    done
}

# --- Source: unpacked and patched once per source package version and patch set ------------------------------
source_tree=$cache/source-$source_version-patches-$patch_sha
if [ ! -f "$source_tree/.unpacked" ]; then
    say "unpacking $source_package $source_version into $source_tree (${#patches[@]} patch(es))"
    rm -rf "$source_tree" "$source_tree.tmp"
    mkdir -p "$source_tree.tmp"
    tarball=$(dpkg-deb -c "$source_deb" | awk '{print $6}' | grep -E '^\./usr/src/linux-source-[0-9.]+\.tar\.xz$' | head -n1)
    [ -n "$tarball" ] || die "$source_deb has no usr/src/linux-source-*.tar.xz"
    dpkg-deb --fsys-tarfile "$source_deb" | tar -xO "$tarball" | tar -xJ -C "$source_tree.tmp" --strip-components=1 \
        || die "cannot unpack $tarball from $source_deb"
    for p in "${patches[@]}"; do
        patch -d "$source_tree.tmp" -p1 --forward --quiet < "$p" \
            || die "$p does not apply to $source_package $source_version: update it for this source"
    done
    touch "$source_tree.tmp/.unpacked"
    mv "$source_tree.tmp" "$source_tree"
fi

# --- Configure: allnoconfig + the fragment, then check every line of the fragment ------------------------------
# One fixed work directory (the object tree's path is the same in every build); a failed build leaves its log there.
work=$cache/in-progress
rm -rf "$work"
mkdir -p "$work/obj"
log=$work/build.log
: > "$log"
source_date=$(dpkg-deb --fsys-tarfile "$source_deb" | tar -tv 2>/dev/null | awk 'NR == 1 {print $4, $5}')
export KBUILD_BUILD_TIMESTAMP="$source_date" KBUILD_BUILD_USER=sandbox KBUILD_BUILD_HOST=sandbox KBUILD_BUILD_VERSION=1
kmake() { make -C "$source_tree" O="$work/obj" "$@" >> "$log" 2>&1; }
fail_with_log() {
    printf 'build-kernel: ERROR: %s; the last lines of %s:\n' "$1" "$log" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
    die "$1 (full log: $log)"
}
say "configuring (allnoconfig + $fragment)"
kmake allnoconfig || fail_with_log "make allnoconfig failed"
(cd "$source_tree" && KCONFIG_CONFIG="$work/obj/.config" scripts/kconfig/merge_config.sh -m -O "$work/obj" \
    "$work/obj/.config" "$fragment") >> "$log" 2>&1 || fail_with_log "merging $fragment failed"
kmake olddefconfig || fail_with_log "make olddefconfig failed"
unmet=()
while IFS= read -r line; do
    case $line in
        CONFIG_*=n) grep -q "^${line%%=*}=" "$work/obj/.config" && unmet+=("$line (is $(grep "^${line%%=*}=" "$work/obj/.config"))") ;;
        CONFIG_*) grep -qxF "$line" "$work/obj/.config" || unmet+=("$line") ;;
    esac
done < "$fragment"
[ ${#unmet[@]} -eq 0 ] || die "the kernel's Kconfig did not take these lines of $fragment (a dependency is missing or the option is gone): ${unmet[*]}"

# --- The key: what the build depends on ----------------------------------------------------------------------
key=$(printf 'recipe %s\nsource %s\npatches %s\nconfig %s\ncompiler %s\n' "$recipe" "$source_sha" "$patch_list" "$(sha "$work/obj/.config")" "$compiler" \
    | sha256sum | cut -d' ' -f1)
build=$cache/$key
if [ -f "$build/manifest.txt" ] && [ -f "$build/vmlinux" ]; then
    publish
    say "up to date: $out_dir/vmlinux ($source_package $source_version, key $key, cached in $build)"
    exit 0
fi

# --- Build --------------------------------------------------------------------------------------------------
say "compiling vmlinux with $jobs job(s); log: $log"
started=$(date +%s)
kmake -j"$jobs" vmlinux &
build_pid=$!
while kill -0 "$build_pid" 2>/dev/null; do
    sleep 30
    kill -0 "$build_pid" 2>/dev/null && say "  ... $(grep -c '^  CC ' "$log" || true) files compiled, $(( $(date +%s) - started )) s"
done
wait "$build_pid" || fail_with_log "make vmlinux failed"
seconds=$(( $(date +%s) - started ))
release=$(make -s -C "$source_tree" O="$work/obj" kernelrelease 2>>"$log") || fail_with_log "make kernelrelease failed"

objcopy --strip-all "$work/obj/vmlinux" "$work/vmlinux" || fail_with_log "objcopy --strip-all of vmlinux failed"
readelf -n "$work/vmlinux" 2>/dev/null | grep -Eq '^[[:space:]]*Xen[[:space:]].*\(0x00000012\)' \
    || die "the built vmlinux has no PVH entry note (Xen note 0x12): CONFIG_PVH did not take"
cp "$work/obj/.config" "$work/config"
printf '%s\n' "$release" > "$work/kernel-release"
{
    printf '# Sandbox guest kernel (images/build-kernel.sh)\n'
    printf 'input-key %s\n' "$key"
    printf 'source-package %s %s sha256 %s file %s\n' "$source_package" "$source_version" "$source_sha" "$source_deb"
    printf 'config-fragment %s sha256 %s\n' "images/kernel/sandbox-guest.config" "$(sha "$fragment")"
    [ -z "$patch_list" ] || printf '%s\n' "$patch_list" | sed 's/^/patch /'
    printf 'config sha256 %s\n' "$(sha "$work/config")"
    printf 'compiler %s\n' "$compiler"
    printf 'kernel-release %s\n' "$release"
    printf 'build-seconds %s (jobs %s)\n' "$seconds" "$jobs"
    printf 'vmlinux sha256 %s size %s\n' "$(sha "$work/vmlinux")" "$(stat -c %s "$work/vmlinux")"
} > "$work/manifest.txt"
rm -rf "$work/obj" "$build"
mv "$work" "$build"
publish
say "built $release in $seconds s: $out_dir/vmlinux ($(stat -c %s "$out_dir/vmlinux") bytes; cached in $build)"
