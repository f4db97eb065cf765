#!/usr/bin/env bash
# Runs every test project one after another (VM tests must not compete with each other for the 2 cores), then prints
# one closing line "tests: N passed, N failed, N skipped" summed over all projects. Exit code non-zero on any failure.
set -uo pipefail
configuration=${1:-Release}
cd "$(dirname "$0")/.."
passed=0 failed=0 skipped=0 status=0
# The console logger closes each run with "Total tests: N", then "     Passed: N", "     Failed: N", "    Skipped: N".
count() { grep -E "^ +$1: +[0-9]+ *\$" "$log" | tail -1 | grep -oE '[0-9]+' || echo 0; }
for project in tests/*/*.csproj; do
  grep -q '<IsTestProject>true</IsTestProject>' "$project" || continue
  echo "== $project"
  log=$(mktemp)
  dotnet test "$project" -c "$configuration" --no-build -nologo --logger "console;verbosity=normal" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if grep -qE '^Total tests: +[0-9]+' "$log"; then
    passed=$((passed + $(count Passed))) failed=$((failed + $(count Failed))) skipped=$((skipped + $(count Skipped)))
  elif [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
    echo "!! $project: the test run failed before reporting a summary"
  fi
  [ "$rc" -eq 0 ] || status=1
  rm -f "$log"
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$passed" -gt 0 ] || status=1
exit $status
