#!/usr/bin/env bash
# Every figure of examples/firmware/FIGURES.md, measured afresh: flash and
# static RAM of both builds (llvm-size), the data tables' share (nm), the
# painted-stack high-water mark and the whole-run instruction count (QEMU +
# tools/insncount.c), and instructions per iteration (tools/insn-per-iter.sh).
# Needs qemu-system-arm, gcc and `rustup component add llvm-tools`.
set -euo pipefail
cd "$(dirname "$0")/.."
fw=examples/firmware
# The firmware's target dir (honours CARGO_TARGET_DIR if CI sets one).
tdir=$(cd "$fw" && cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
elf=$tdir/thumbv7em-none-eabihf/release/bilevel-firmware
size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
qemu=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic
  -semihosting-config enable=on,target=native)

sections() {
  "$size" -A "$elf" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" || $1 == ".uninit" { ram += $2 }
    $1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/ { printf "%s=%d ", $1, $2 }
    END { printf "\nflash=%d static_ram=%d\n", flash, ram }'
}

echo "== machine: $(uname -m), $(nproc) cores, $(rustc --version), $(qemu-system-arm --version | head -1), $(date -u +%F)"
# FW_FEATURES=generated: the same figures for the generated oracle (the
# QEMU run then reports its golden-bit mismatch, docs/decisions.md 113).
feat=(${FW_FEATURES:+--features "$FW_FEATURES"})
echo "== default build (semihosting text)${FW_FEATURES:+, features $FW_FEATURES}"
(cd "$fw" && cargo build -q --release --locked "${feat[@]}")
sections
data=0
while read -r _ sz _ _; do data=$((data + 16#$sz)); done < <(nm -S "$elf" | grep -E 'ridge4data|ridge_f32.*D[01]_[XL]')
echo "data tables (TRAIN, VAL: integer codes): $data B"
"${qemu[@]}" -kernel "$elf" | grep -E 'stack high-water|PASS|FAIL' || true
api=1
qemu-system-arm --version | grep -qE 'version (9|[1-9][0-9])\.' && api=2
mkdir -p "$tdir/insncount"
gcc -shared -fPIC -O2 -DPLUGIN_API=$api -o "$tdir/insncount/libinsncount.so" tools/insncount.c
"${qemu[@]}" -icount shift=0 -plugin "$tdir/insncount/libinsncount.so" -d plugin \
  -kernel "$elf" 2>&1 >/dev/null | sed -n 's/^insns: /whole run: guest instructions /p' || true

echo "== defmt build (defmt-rtt)"
(cd "$fw" && cargo build -q --release --locked --features "defmt${FW_FEATURES:+,$FW_FEATURES}")
sections
(cd "$fw" && cargo build -q --release --locked "${feat[@]}")

echo "== instructions per iteration"
tools/insn-per-iter.sh
