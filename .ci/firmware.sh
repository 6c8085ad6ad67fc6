#!/usr/bin/env bash
# The firmware job (issue 8): bilevel-core on an emulated Cortex-M4F.
#
# Installs what it needs if missing (qemu-system-arm via apt-get, the
# thumbv7em-none-eabihf target via rustup), builds the firmware in release,
# runs it under QEMU (mps2-an386) with a timeout and fails on a non-zero exit
# status, then builds the defmt variant and runs it too (its log goes to RTT,
# which QEMU does not read, but the exit status is checked), and runs clippy
# on both variants.
# Idempotent; run from anywhere (as root on Debian bookworm for the apt step).
#
# Note: Debian bookworm's qemu-system-arm (7.2) replaces the image's
# bookworm-backports qemu-utils 10.0 (qemu-img), which this project does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fw=examples/firmware
start=$SECONDS
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
timeout 120 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" || status=$?
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

# (the ELF is the default variant again after this rebuild)
(cd "$fw" && cargo build -q --release --locked)
llvm_size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
if [ -x "$llvm_size" ]; then
  step "size"
  "$llvm_size" -A "$elf" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit)'
  took
fi
cd "$root"
echo "== firmware: OK in $((SECONDS - start)) s"
