#!/usr/bin/env bash
# Guest instructions per iteration of BO-REP and SLIP in the firmware's job,
# measured two ways under QEMU mps2-an386 (Cortex-M4F), both deterministic:
#   1. tools/insncount.c, a TCG plugin counting every executed instruction;
#   2. SysTick ticks read by the firmware under -icount shift=0 (x40).
# Each solver's cost probe (examples/firmware/examples/count.rs) is built for
# A and B iterations; the difference of the two totals divided by B - A
# cancels reset, data set-up, warm start and printing.
# Usage: tools/insn-per-iter.sh [A B]   (default 200 400)
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:-200}
b=${2:-400}
fw=examples/firmware
# The firmware's target dir (honours CARGO_TARGET_DIR if CI sets one).
tdir=$(cd "$fw" && cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out=$tdir/insncount
mkdir -p "$out"
# Plugin API: 1 for QEMU 7.2 (bookworm), 2 for QEMU >= 9.
api=1
qemu-system-arm --version | grep -qE 'version (9|[1-9][0-9])\.' && api=2
gcc -shared -fPIC -O2 -DPLUGIN_API=$api -o "$out/libinsncount.so" tools/insncount.c

# run SOLVER ITERS -> "insns ticks"
run() {
  (cd "$fw" && FW_SOLVER=$1 FW_ITERS=$2 cargo build -q --release --example count ${FW_FEATURES:+--features "$FW_FEATURES"})
  local log
  log=$(timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -icount shift=0 \
    -plugin "$out/libinsncount.so" -d plugin \
    -kernel "$tdir/thumbv7em-none-eabihf/release/examples/count" 2>&1)
  local insns ticks
  insns=$(awk '/^insns:/{print $2}' <<<"$log")
  ticks=$(sed -n 's/.*systick_ticks=\([0-9]*\).*/\1/p' <<<"$log")
  if [ -z "$insns" ] || [ -z "$ticks" ]; then
    echo "no count from the $1 probe:" >&2
    echo "$log" >&2
    exit 1
  fi
  echo "$insns $ticks"
}

for solver in borep slip; do
  read -r ia ta < <(run $solver "$a")
  read -r ib tb < <(run $solver "$b")
  n=$((b - a))
  echo "$solver: plugin $ia -> $ib insns, insns_per_iter=$(((ib - ia) / n)) (exact: $((ib - ia))/$n);" \
    "systick $ta -> $tb ticks, insns_per_iter=$(((tb - ta) * 40 / n)) (+-$((80 / n + 1)))"
done
