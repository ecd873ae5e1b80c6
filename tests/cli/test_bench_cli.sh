#!/usr/bin/env bash
# test_bench_cli.sh - `hamnet bench` end to end on small shapes: the JSON object and its keys,
# the path choice and --kernel, the memory counters against the prediction (stored mode grows
# with depth, reversible mode does not), --compare-reversible, and usage errors (exit 2).
# Timings are not checked (they depend on the machine's load).
set -euo pipefail
: "${HAMNET:?set HAMNET to the hamnet binary}"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# json FIELD < one JSON object: print the field (python3 from Debian: /usr/bin/python3)
json() {
  /usr/bin/python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; print(str(v).lower() if isinstance(v, bool) else v)' "$1"
}

small=(--width 8 --depth 16 --batch 70 --steps 2 --warmup 1 --threads 2)
out=$("$HAMNET" bench "${small[@]}" --json)
for key in ms_per_step samples_per_s gflops roofline_gflops peak_rss_mb cpu_ms_per_step activation_bytes; do
  v=$(json "$key" <<<"$out") || fail "JSON lacks $key: $out"
  /usr/bin/python3 -c "import sys; sys.exit(0 if float('$v') > 0 or '$key' == 'activation_bytes' else 1)" ||
    fail "$key = $v is not positive"
done
[[ $(json kernel <<<"$out") == narrow ]] || fail "width 8 hamiltonian should take the narrow path: $out"
[[ $(json reversible <<<"$out") == true ]] || fail "hamiltonian defaults to reversible: $out"

out=$("$HAMNET" bench "${small[@]}" --kernel wide --arch leapfrog --json)
[[ $(json kernel <<<"$out") == wide ]] || fail "--kernel wide ignored: $out"

# stored mode: activation bytes as predicted, proportional to depth; reversible: independent of it
for depth in 8 32; do
  s=$("$HAMNET" bench --width 16 --depth $depth --batch 64 --steps 1 --warmup 0 --no-roofline --reversible off --json)
  r=$("$HAMNET" bench --width 16 --depth $depth --batch 64 --steps 1 --warmup 0 --no-roofline --reversible on --json)
  [[ $(json activation_bytes <<<"$s") == $(json predicted_activation_bytes <<<"$s") ]] ||
    fail "stored depth $depth: counter and prediction differ: $s"
  [[ $(json activation_bytes <<<"$r") == $(json predicted_activation_bytes <<<"$r") ]] ||
    fail "reversible depth $depth: counter and prediction differ: $r"
  eval "stored_$depth=$(json activation_bytes <<<"$s") rev_$depth=$(json activation_bytes <<<"$r")"
done
# shellcheck disable=SC2154 # set by eval above
{ [[ $rev_8 == "$rev_32" ]] && ((stored_32 > 3 * stored_8)); } ||
  fail "activation bytes: reversible $rev_8 -> $rev_32, stored $stored_8 -> $stored_32 (depth 8 -> 32)"

out=$("$HAMNET" bench --compare-reversible --width 8 --depth 32 --batch 40 --json)
/usr/bin/python3 -c "import sys; d = float('$(json max_rel_diff <<<"$out")'); sys.exit(0 if d < 1e-3 else 1)" ||
  fail "reversible and stored gradients differ: $out"

rc=0
"$HAMNET" bench --bogus >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "unknown option: exit $rc, expected 2"
rc=0
"$HAMNET" bench --arch resnet --reversible on --steps 1 >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "reversible resnet: exit $rc, expected 2"
rc=0
"$HAMNET" bench --width 1 --features 2 >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "pad opening narrower than the data: exit $rc, expected 2"
"$HAMNET" bench --help | grep -q -- "--compare-reversible" || fail "--help does not mention --compare-reversible"
echo "test_bench_cli: ok"
