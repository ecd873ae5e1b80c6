#!/usr/bin/env bash
# test.sh - README command 2: install everything, build float and double, run the whole suite.
#
#   scripts/test.sh [ctest options, e.g. -L unit or -R config]
#
# Builds build-ci-float and build-ci-double (Release) and runs ctest in both; the double
# build carries the tight gradient checks. Then (whole suite only) build-ci-tile64: the narrow
# kernels and gradient checks with -DHAMNET_TILE=64, and build-ci-asan: sanitizers and fuzzing,
# see tests/fuzz/ci_sanitize.sh. Exit status is non-zero if anything failed.
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
# The narrow path with tiles of 64 samples (-DHAMNET_TILE=64, README "Building on a cluster"):
# its kernels against the references and its gradients against finite differences (double).
if [ $# -eq 0 ]; then
  dir="$here/build-ci-tile64"
  echo "=== narrow tiles of 64 samples ($dir)"
  cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DHAMNET_PRECISION=double -DHAMNET_TILE=64 >/dev/null &&
    cmake --build "$dir" -j "$jobs" --target test_kernels test_narrow test_gradcheck >/dev/null &&
    (cd "$dir" && ctest --output-on-failure -R '^(test_kernels|test_narrow|test_gradcheck)$') || status=1
fi
# Sanitizers and fuzzing (issue 6; tests/fuzz/ci_sanitize.sh): a clang ASan + UBSan build with the
# libFuzzer harnesses. Runs with the whole suite (no ctest options given) or HN_SANITIZE=1;
# HN_SANITIZE=0 skips it.
if [ "${HN_SANITIZE:-$([ $# -eq 0 ] && echo 1 || echo 0)}" = 1 ]; then
  echo "=== sanitizers and fuzzing ($here/build-ci-asan)"
  "$here/tests/fuzz/ci_sanitize.sh" "$here/build-ci-asan" || status=1
fi
exit $status
