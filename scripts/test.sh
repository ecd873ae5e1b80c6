#!/usr/bin/env bash
# test.sh - README command 2: install everything, build float and double, run the whole suite.
#
#   scripts/test.sh [ctest options, e.g. -L unit or -R config]
#
# Builds build-ci-float and build-ci-double (Release) and runs ctest in both; the double
# build carries the tight gradient checks. Then (whole suite only) build-ci-asan: sanitizers
# and fuzzing, see tests/fuzz/ci_sanitize.sh. Exit status is non-zero if anything failed.
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
  # The Slurm job tests exercise jobs/ and the launchers, not the arithmetic: once is enough.
  extra=()
  [ "$precision" = double ] && [ $# -eq 0 ] && extra=(-LE slurm)
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "${extra[@]}" "$@") || status=1
done
# Sanitizers and fuzzing (issue 6; tests/fuzz/ci_sanitize.sh): a clang ASan + UBSan build with the
# libFuzzer harnesses. Runs with the whole suite (no ctest options given) or HN_SANITIZE=1;
# HN_SANITIZE=0 skips it.
if [ "${HN_SANITIZE:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  echo "=== sanitizers and fuzzing ($here/build-ci-asan)"
  "$here/tests/fuzz/ci_sanitize.sh" "$here/build-ci-asan" || status=1
fi
exit $status
