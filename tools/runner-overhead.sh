#!/usr/bin/env bash
# The runner's overhead on the toy spec's run, in instructions counted by
# callgrind (deterministic, unlike wall time on a shared VM). Each variant of
# std-runner/benches/overhead.rs runs once per process in --one-shot mode:
#   setup     read and compile the spec, build the solver (shared by all);
#   bare      setup + the core loop (run(), no observer);
#   observed  setup + the runner's observed session at the spec's cadence
#             (trace line with upper and lower loss on the whole data every
#             eval_every iterations, progress log lines on stderr, summary;
#             no plots);
#   command   `bilevel run --no-plots` in process (run_spec: compile,
#             config.json, observed session, expect checks, expect.json).
# Counted at N and 2N iterations (default N = 8000, the spec's own count):
#   whole-run overhead at N  = (observed(N) - bare(N)) / (bare(N) - setup)
#   per-iteration overhead   = (observed(2N) - observed(N) - (bare(2N) - bare(N)))
#                              / (bare(2N) - bare(N))
# callgrind counts user-space instructions only: the system calls (one write
# per trace line, two fsyncs, renames) are not in the figures.
# Needs valgrind (apt-get install valgrind). Not part of CI.
# Usage: tools/runner-overhead.sh [N]     Profiles stay in $out (printed).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8000}
command -v valgrind >/dev/null || {
  echo "valgrind is missing: apt-get install valgrind" >&2
  exit 1
}
exe=$(cargo bench -p bilevel-runner --bench overhead --no-run --locked --message-format=json 2>/dev/null |
  sed -n 's/.*"target":{[^}]*"name":"overhead"[^}]*}.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
  echo "cannot find the overhead bench executable" >&2
  exit 1
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/runner-overhead.XXXXXX")

# count MODE ITERS -> total instructions (callgrind's "totals")
count() {
  local f="$out/callgrind.$1.$2.out"
  valgrind --tool=callgrind --callgrind-out-file="$f" "$exe" --one-shot "$1" "$2" \
    >/dev/null 2>"$out/valgrind.$1.$2.log"
  awk '/^totals:/{print $2}' "$f"
}

setup=$(count setup "$n")
b1=$(count bare "$n")
b2=$(count bare $((2 * n)))
o1=$(count observed "$n")
o2=$(count observed $((2 * n)))
c1=$(count command "$n")
echo "instructions (callgrind totals), toy spec, N = $n:"
printf '  %-22s %14s\n' "setup" "$setup" "bare N" "$b1" "bare 2N" "$b2" \
  "observed N" "$o1" "observed 2N" "$o2" "command N" "$c1"
awk -v s="$setup" -v b1="$b1" -v b2="$b2" -v o1="$o1" -v o2="$o2" -v c1="$c1" -v n="$n" 'BEGIN {
  run = b1 - s
  printf "bare loop: %.0f instructions per iteration\n", (b2 - b1) / n
  printf "observed session, whole run of N iterations: +%.3f %% (%+.0f instructions)\n", 100 * (o1 - b1) / run, o1 - b1
  printf "observed session, per iteration (2N - N):     +%.3f %% (%+.1f instructions per iteration)\n", 100 * ((o2 - o1) - (b2 - b1)) / (b2 - b1), ((o2 - o1) - (b2 - b1)) / n
  printf "bilevel run --no-plots in process, N:         +%.3f %% (%+.0f instructions)\n", 100 * (c1 - b1) / run, c1 - b1
}'
echo "profiles: $out (callgrind_annotate $out/callgrind.observed.$n.out)"
