#!/usr/bin/env bash
# Runs every test project one after another (VM tests must not compete with each other for the 2 cores), then prints
# one closing line "tests: N passed, N failed, N skipped" summed over all runs. Exit code non-zero on any failure.
#
# What depends on containerd runs once per release of the matrix (images/setup-host.sh extracts them into
# /var/cache/sandbox/containerd/<label>/bin, listed in its manifest.txt): the tests of Category=EndToEnd in
# Sandbox.Shim.Tests (ctr) and Sandbox.Cri.Tests (CRI), each with that release's containerd, ctr and runc shim first on
# PATH; Category=SandboxApi (pods through containerd's Sandbox API) only on 2.x. Category=Load (20 pods at once,
# minutes under TCG) runs on the last release of the matrix only. Everything else runs once.
#
# Environment:
#   SANDBOX_CONTAINERD_MATRIX  the labels to run, e.g. "1.6 2" (default: every release in the manifest)
set -uo pipefail
configuration=${1:-Release}
cd "$(dirname "$0")/.."
. tests/containerd-matrix.sh
passed=0 failed=0 skipped=0 status=0
results=()

# The console logger closes each run with "Total tests: N", then "     Passed: N", "     Failed: N", "    Skipped: N".
count() { grep -E "^ +$1: +[0-9]+ *\$" "$log" | tail -1 | grep -oE '[0-9]+' || echo 0; }

# failures_of LOG: "    failed: NAME" per failed test of a console log, each followed by up to 12 lines of its
# "Error Message:" block (the console logger prints it between the "Failed NAME [time]" line and "Stack Trace:").
failures_of() {
    awk '
        /^ +Failed [A-Za-z_][^ ]+/ { print "    failed: " $2; inmessage = 0; lines = 0; next }
        /^ +Error Message:/ { inmessage = 1; next }
        /^ +(Stack Trace:|Standard Output Messages:|Passed |Skipped )/ { inmessage = 0; next }
        inmessage && lines < 12 && NF > 0 { sub(/^ +/, ""); print "      " $0; lines++ }
    ' "$1"
}

# run_project PROJECT WHAT [dotnet test arguments...]: one dotnet test run, added to the totals and the results table.
run_project() {
    local project=$1 what=$2 rc p f s
    shift 2
    echo "== $project ($what)"
    log=$(mktemp)
    dotnet test "$project" -c "$configuration" --no-build -nologo --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if grep -qE '^Total tests: +[0-9]+' "$log"; then
        p=$(count Passed) f=$(count Failed) s=$(count Skipped)
    elif grep -q 'No test matches the given testcase filter' "$log" && [ "$rc" -eq 0 ]; then
        p=0 f=0 s=0
    else
        p=0 f=1 s=0
        echo "!! $project ($what): the test run failed before reporting a summary"
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    [ "$rc" -eq 0 ] || status=1
    results+=("$(printf '%-26s %-42s %s' "$(basename "$(dirname "$project")")" "$what" "$([ "$rc" -eq 0 ] && echo passed || echo FAILED) ($p passed, $f failed, $s skipped)")")
    # the failed tests by name and the first lines of their error messages, so that the closing table (often all a CI
    # log keeps) says which ones failed and why
    while IFS= read -r line; do results+=("$line"); done < <(failures_of "$log")
    rm -f "$log"
}

is_test_project() { grep -q '<IsTestProject>true</IsTestProject>' "$1"; }
depends_on_containerd() { case $1 in */Sandbox.Shim.Tests/*|*/Sandbox.Cri.Tests/*) return 0 ;; esac; return 1; }

# 1. Everything that does not depend on the containerd release, once.
for project in tests/*/*.csproj; do
    is_test_project "$project" || continue
    case $project in
        */Sandbox.Cri.Tests/*) ;;
        */Sandbox.Shim.Tests/*) run_project "$project" "unit tests" --filter "Category!=EndToEnd" ;;
        *) run_project "$project" "once" ;;
    esac
done

# 2. The containerd end-to-end suites, once per release of the matrix.
if ! matrix_check; then
    failed=$((failed + 1)) status=1
else
    for label in $(matrix_labels); do
        bin=$(matrix_bin "$label")
        version=$(matrix_version "$label")
        if [ -z "$version" ]; then
            echo "!! containerd $label is not in $matrix_manifest (or $bin is incomplete): run images/setup-host.sh"
            failed=$((failed + 1)) status=1
            continue
        fi
        echo "== containerd $label: $version ($("$bin/containerd" --version))"
        # containerd's Sandbox API (the CRI suite's sandbox-api handler) exists from 2.0 on
        case $label in
            1.*) filter="Category=EndToEnd&Category!=SandboxApi&Category!=Load" ;;
            *) filter="Category=EndToEnd&Category!=Load" ;;
        esac
        for project in tests/*/*.csproj; do
            is_test_project "$project" && depends_on_containerd "$project" || continue
            PATH=$bin:$PATH run_project "$project" "containerd $label ($version)" --filter "$filter"
        done
        last_label=$label last_bin=$bin last_version=$version
    done
    # 3. The load tests, once, on the last release that was there
    if [ -n "${last_label:-}" ]; then
        for project in tests/*/*.csproj; do
            is_test_project "$project" && depends_on_containerd "$project" || continue
            PATH=$last_bin:$PATH run_project "$project" "load, containerd $last_label ($last_version)" --filter "Category=Load"
        done
    fi
fi

echo
echo "== results"
printf '%s\n' "${results[@]}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$passed" -gt 0 ] || status=1
exit $status
