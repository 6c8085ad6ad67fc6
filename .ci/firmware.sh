#!/usr/bin/env bash
# The firmware job (issue 8): bilevel-core on an emulated Cortex-M4F.
#
# Installs what it needs if missing (qemu-system-arm via apt-get, the
# thumbv7em-none-eabihf target via rustup), builds the firmware in release,
# runs it under QEMU (mps2-an386) with a timeout and fails on a non-zero exit
# status, then builds the defmt variant and runs it too (its log goes to RTT,
# which QEMU does not read, but the exit status is checked), and runs clippy
# on both variants. Then it enforces the firmware budget (docs/decisions.md 61):
# flash (.vector_table + .text + .rodata + .data) at most 32,768 B in both
# variants, and RAM (static .data + .bss + .uninit, plus the painted stack's
# high-water mark the default build prints) at most 8,192 B; it prints the
# figures and fails with a message naming the figure and the budget when one
# is exceeded. (Instructions per iteration are measured by
# tools/fw-figures.sh, not here.)
# Idempotent; run from anywhere (as root on Debian bookworm for the apt step).
#
# Note: Debian bookworm's qemu-system-arm (7.2) replaces the image's
# bookworm-backports qemu-utils 10.0 (qemu-img), which this project does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fw=examples/firmware
start=$SECONDS
FLASH_BUDGET=32768
RAM_BUDGET=8192
step() { printf '\n== firmware: %s\n' "$*"; t0=$SECONDS; }
took() { echo "   ($((SECONDS - t0)) s)"; }

step "qemu-system-arm"
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -1
took

step "rustup target thumbv7em-none-eabihf"
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
  rustup target add thumbv7em-none-eabihf
fi
took

# The firmware's target dir (honours CARGO_TARGET_DIR if CI sets one).
tdir=$(cd "$fw" && cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
elf=$tdir/thumbv7em-none-eabihf/release/bilevel-firmware

step "build (release)"
(cd "$fw" && cargo build --release --locked)
took

step "run under QEMU (mps2-an386, Cortex-M4F)"
# timeout: a firmware stuck in a loop never exits QEMU by itself.
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" | tee "$log" || status=${PIPESTATUS[0]}
echo "   exit status $status"
took
if [ "$status" -ne 0 ]; then
  echo "firmware FAILED under QEMU (status $status; 124 = timeout)" >&2
  exit 1
fi

step "defmt variant (defmt-rtt, for a real board): build, and run under QEMU"
(cd "$fw" && cargo build --release --locked --features defmt)
# Under QEMU nobody reads the RTT buffer, so the log is invisible, but the
# firmware still runs to its semihosting exit: the status checks the same
# golden bits in this build.
status=0
timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" || status=$?
echo "   exit status $status"
took
if [ "$status" -ne 0 ]; then
  echo "defmt firmware FAILED under QEMU (status $status; 124 = timeout)" >&2
  exit 1
fi

step "clippy (both variants)"
(cd "$fw" && cargo clippy --release --locked --all-targets -- -D warnings \
  && cargo clippy --release --locked --all-targets --features defmt -- -D warnings)
took

# The oracle generated from examples/specs/firmware_ridge.bilevel (feature
# `generated`, docs/decisions.md 110, 113): built, run under QEMU (exit 0
# only on the golden bits its host test examples/codegen/tests/firmware_job.rs
# computes from the same generated code) and linted. Its image is over the
# flash budget (decisions 112, 121), so the budget below is the default image's;
# its sizes are printed there.
step "generated oracle (feature generated): build, run under QEMU, clippy"
(cd "$fw" && cargo build --release --locked --features generated)
status=0
timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" | tail -3 || status=${PIPESTATUS[0]}
echo "   exit status $status"
if [ "$status" -ne 0 ]; then
  echo "generated-oracle firmware FAILED under QEMU (status $status; 124 = timeout)" >&2
  exit 1
fi
(cd "$fw" && cargo clippy --release --locked --all-targets --features generated -- -D warnings)
took

# Section sizes of the ELF, from its section headers (binutils' readelf,
# which reads an ARM ELF on any host): prints them and sets flash, ram.
sections() {
  if ! command -v readelf >/dev/null 2>&1; then
    echo "firmware budget: cannot measure the sections: readelf (binutils) is not installed" >&2
    exit 1
  fi
  local name hex sz line=""
  flash=0 ram=0
  while read -r name hex; do
    sz=$((16#$hex))
    line+="$name=$sz "
    case $name in
      .data) flash=$((flash + sz)) ram=$((ram + sz)) ;;
      .bss | .uninit) ram=$((ram + sz)) ;;
      *) flash=$((flash + sz)) ;;
    esac
  done < <(readelf -S -W "$1" | awk '
    { for (i = 1; i <= NF; i++) if ($i ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/) {
        print $i, $(i + 4); break } }')
  echo "   ${line}flash=$flash static_ram=$ram"
  if [ -z "$flash" ] || [ "$flash" -eq 0 ]; then
    echo "firmware budget: no flash sections found in $1" >&2
    exit 1
  fi
}
over=0
budget() { # NAME VALUE LIMIT
  if [ "$2" -gt "$3" ]; then
    echo "firmware budget EXCEEDED: $1 is $2 B, the budget is $3 B ($(($2 - $3)) B over)" >&2
    over=1
  else
    echo "   $1: $2 B of $3 B ($(($3 - $2)) B to spare)"
  fi
}

step "budget: flash <= $FLASH_BUDGET B, RAM (static + stack) <= $RAM_BUDGET B"
stack=$(sed -n 's/.*stack high-water mark: \([0-9]*\) of.*/\1/p' "$log" | tail -1)
if [ -z "$stack" ]; then
  echo "firmware budget: the run under QEMU printed no stack high-water mark" >&2
  exit 1
fi
# The ELF is the defmt variant after the steps above: the default again.
(cd "$fw" && cargo build -q --release --locked)
echo "   default build (semihosting text):"
sections "$elf"
budget "flash (default build)" "$flash" "$FLASH_BUDGET"
echo "   stack high-water mark (painted, default build): $stack B"
budget "RAM (default build: static $ram B + stack $stack B)" "$((ram + stack))" "$RAM_BUDGET"
(cd "$fw" && cargo build -q --release --locked --features generated)
echo "   generated-oracle build (feature generated; figures only, no budget: decision 110):"
sections "$elf"
(cd "$fw" && cargo build -q --release --locked --features defmt)
echo "   defmt-rtt build:"
sections "$elf"
budget "flash (defmt-rtt build)" "$flash" "$FLASH_BUDGET"
# Its log goes to RTT, which QEMU does not read: its stack is not measured.
budget "static RAM (defmt-rtt build; its stack is not measured)" "$ram" "$RAM_BUDGET"
# (the ELF is the default variant again after this rebuild)
(cd "$fw" && cargo build -q --release --locked)
took
if [ "$over" -ne 0 ]; then
  echo "firmware FAILED: over its budget (see above; FIGURES.md in examples/firmware records the figures)" >&2
  exit 1
fi
cd "$root"
echo "== firmware: OK in $((SECONDS - start)) s"
