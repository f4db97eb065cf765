#!/usr/bin/env bash
# `make conformance`: critest (the Kubernetes CRI validation suite) on each containerd release of the test matrix, with
# runc as the reference and this runtime's `sandbox` handler (tests/Sandbox.Conformance). Each release prints the
# three lists (passes under runc and fails here; fails under both; passes here only) and one `conformance:` line;
# the run fails when the first list has an entry that tests/Sandbox.Conformance/conformance-exceptions.toml does not
# document. Reports and critest's logs: build/conformance/<label>/.
#
# Environment:
#   SANDBOX_CONTAINERD_MATRIX  the labels to run, e.g. "1.6 2" (default: every release in the manifest)
#   CRITEST                    a critest binary (default: ../shared/tools/cri-tools/critest.xz, unpacked)
#   CONFORMANCE_FOCUS          a ginkgo focus regex, to run some specs only (the comparison then covers only those)
set -uo pipefail
configuration=${1:-Release}
cd "$(dirname "$0")/.."
. tests/containerd-matrix.sh
matrix_check || exit 1

status=0 summaries=()
for label in $(matrix_labels); do
    bin=$(matrix_bin "$label")
    if [ -z "$(matrix_version "$label")" ]; then
        echo "!! containerd $label is not in $matrix_manifest (or $bin is incomplete): run images/setup-host.sh"
        status=1
        continue
    fi
    output=build/conformance/$label
    echo "== conformance on containerd $label ($("$bin/containerd" --version))"
    PATH=$bin:$PATH dotnet run --project tests/Sandbox.Conformance -c "$configuration" --no-build -- \
        --output "$output" ${CONFORMANCE_FOCUS:+--focus "$CONFORMANCE_FOCUS"}
    rc=$?
    [ "$rc" -eq 0 ] || status=1
    summary=$(grep -h '^conformance: containerd' "$output/report.md" 2>/dev/null || echo "conformance: containerd $label: no report (exit code $rc)")
    summaries+=("$summary")
done

echo
echo "== conformance results"
printf '%s\n' "${summaries[@]}"
exit $status
