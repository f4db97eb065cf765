# Sourced by tests/run-tests.sh and tests/run-conformance.sh: the containerd releases of the test matrix, which
# images/setup-host.sh extracts into /var/cache/sandbox/containerd/<label>/bin and lists in its manifest.txt
# (columns: label, package, package version, containerd version, ...).
#
#   matrix_check                 fails with a message when the manifest is missing
#   matrix_labels                the labels to run: $SANDBOX_CONTAINERD_MATRIX (e.g. "1.6 2"), else every label
#   matrix_bin LABEL             that release's bin directory
#   matrix_version LABEL         its containerd version, or nothing when the release is missing or incomplete
matrix_dir=${SANDBOX_CACHE_DIR:-/var/cache/sandbox}/containerd
matrix_manifest=$matrix_dir/manifest.txt

matrix_check() {
    [ -f "$matrix_manifest" ] && return 0
    echo "!! $matrix_manifest is missing: run images/setup-host.sh (make setup), which extracts the containerd releases"
    return 1
}

matrix_labels() { echo "${SANDBOX_CONTAINERD_MATRIX:-$(awk '!/^#/ { print $1 }' "$matrix_manifest" | tr '\n' ' ')}"; }

matrix_bin() { echo "$matrix_dir/$1/bin"; }

matrix_version() {
    [ -x "$matrix_dir/$1/bin/containerd" ] || return 0
    awk -v l="$1" '$1 == l { print $4 }' "$matrix_manifest"
}
