#!/usr/bin/env bash
# test.sh - README command 2: install everything, build float and double, run the whole suite.
#
#   scripts/test.sh [ctest options, e.g. -L unit or -R config]
#
# Builds build-ci-float and build-ci-double (Release) and runs ctest in both; the double
# build carries the tight gradient checks. Exit status is non-zero if anything failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" --deps-only --test-deps

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
jobs=$(nproc 2>/dev/null || echo 2)
status=0
for precision in float double; do
  dir="$here/build-ci-$precision"
  echo "=== $precision build ($dir)"
  "$here/scripts/setup.sh" --precision "$precision" --build-dir "$dir" >/dev/null
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "$@") || status=1
done
exit $status
