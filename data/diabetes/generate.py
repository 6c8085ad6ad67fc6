#!/usr/bin/env python3
"""Rebuild the firmware's const data file from scikit-learn's diabetes table.

Usage (from the repository root):

    python3 data/diabetes/generate.py              # from the vendored .csv.gz files
    python3 data/diabetes/generate.py --from-wheel # first re-extract them from the
                                                   # scikit-learn wheel on PyPI

Input: data/diabetes/diabetes_data_raw.csv.gz (442 rows, 10 space-separated raw
features: age, sex, bmi, bp, s1..s6) and data/diabetes/diabetes_target.csv.gz
(442 rows, the disease-progression target), both verbatim from
`sklearn/datasets/data/` in the scikit-learn wheel (see README.md there).

Output: examples/firmware/src/ridge/data.rs, shared by the firmware and the
host test. What the script does, in this order:

1. Lossless integer coding. Every value is read as an exact decimal. Column
   j (the ten features, then the target) gets the smallest decimal scale
   10^k_j that makes all its 442 values integers, and an offset, the
   column's smallest scaled value, so the stored code is
   q = value * 10^k_j - offset >= 0. The narrowest unsigned type that holds
   the column's codes (u8 or u16) is chosen. The script then decodes every
   stored code back, (q + offset) / 10^k_j as an exact decimal, and exits
   with an error if any value differs from the raw file's: the tables are
   the raw data, not an approximation.
2. Split. Row i (0-based, file order) goes to the validation part when
   i % 3 == 2, else to the training part: 295 training and 147 validation rows.
3. Standardisation constants from the *training* part only (the validation
   part never leaks into them): per column, the training mean of the codes
   (CENTER) and the reciprocal of their population standard deviation
   (ddof = 0, INV_SCALE), both rounded to the nearest f32. The firmware
   and the host test standardise on the fly with the same f32 operations,
   (f32(q) - CENTER) * INV_SCALE, so both see the same bits; the training
   columns then have mean ~0 and variance ~1 (up to f32 rounding), which is
   why the ridge model needs no intercept.

Only the Python standard library is used; the output is deterministic.
"""

import argparse
import gzip
import pathlib
import struct
import subprocess
import sys
import tempfile
import zipfile
from decimal import Decimal, InvalidOperation

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "examples" / "firmware" / "src" / "ridge" / "data.rs"
RAW_X = HERE / "diabetes_data_raw.csv.gz"
RAW_T = HERE / "diabetes_target.csv.gz"
WHEEL_VERSION = "1.9.1"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def from_wheel():
    """Re-extract the two raw files from the scikit-learn wheel on PyPI."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
             f"scikit-learn=={WHEEL_VERSION}"],
            check=True,
        )
        wheels = sorted(pathlib.Path(tmp).glob("scikit_learn-*.whl"))
        if not wheels:
            sys.exit("pip download produced no scikit-learn wheel")
        with zipfile.ZipFile(wheels[0]) as z:
            for dst in (RAW_X, RAW_T):
                dst.write_bytes(z.read(f"sklearn/datasets/data/{dst.name}"))
        print(f"extracted {RAW_X.name}, {RAW_T.name} from {wheels[0].name}")


def read_rows(path, width):
    """The file's rows as lists of exact decimals."""
    rows = []
    with gzip.open(path, "rt") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != width:
                sys.exit(f"{path}:{lineno}: expected {width} fields, found {len(parts)}")
            try:
                row = [Decimal(p) for p in parts]
            except InvalidOperation:
                sys.exit(f"{path}:{lineno}: not a number: {line.strip()!r}")
            if not all(v.is_finite() for v in row):
                sys.exit(f"{path}:{lineno}: not a finite number: {line.strip()!r}")
            rows.append(row)
    return rows


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def lit(v):
    """Shortest decimal literal that round-trips to the f32 nearest to v."""
    x = f32(v)
    if x == 0.0:
        return "0.0"
    for digits in range(1, 10):
        s = f"{x:.{digits}g}"
        if f32(float(s)) == x:
            break
    if "e" in s:
        mant, exp = s.split("e")
        if "." not in mant:
            mant += ".0"
        return f"{mant}e{int(exp)}"
    if "." not in s:
        s += ".0"
    return s


class Column:
    """One column coded losslessly as q = value * 10^scale - offset."""

    def __init__(self, name, values):
        self.name = name
        for scale in range(0, 10):
            scaled = [v.scaleb(scale) for v in values]
            if all(x == x.to_integral_value() for x in scaled):
                break
        else:
            sys.exit(f"{name}: more than 9 decimals, no exact 16-bit coding")
        ints = [int(x) for x in scaled]
        self.scale = scale
        self.offset = min(ints)
        self.codes = [x - self.offset for x in ints]
        top = max(self.codes)
        if top <= 0xFF:
            self.ty = "u8"
        elif top <= 0xFFFF:
            self.ty = "u16"
        else:
            sys.exit(f"{name}: codes up to {top} do not fit 16 bits")
        # Lossless: decode every stored code and compare with the raw value.
        for i, (q, v) in enumerate(zip(self.codes, values)):
            back = Decimal(q + self.offset).scaleb(-scale)
            if back != v or not 0 <= q <= top:
                sys.exit(f"{name} row {i}: {v} stored as {q} decodes to {back}")

    def stats(self, idx):
        """f32 training mean and reciprocal population std of the codes."""
        xs = [self.codes[i] for i in idx]
        n = len(xs)
        mean = sum(xs) / n
        var = sum((x - mean) ** 2 for x in xs) / n
        return f32(mean), f32(1.0 / var ** 0.5), mean, var ** 0.5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from-wheel", action="store_true",
                    help="re-extract the raw files from the scikit-learn wheel first")
    args = ap.parse_args()
    if args.from_wheel:
        from_wheel()

    x = read_rows(RAW_X, 10)
    t = [r[0] for r in read_rows(RAW_T, 1)]
    if len(x) != 442 or len(t) != 442:
        sys.exit(f"expected 442 rows, found {len(x)} features and {len(t)} targets")

    cols = [Column(name, [r[j] for r in x]) for j, name in enumerate(FEATURES)]
    cols.append(Column("target", t))
    train = [i for i in range(442) if i % 3 != 2]
    val = [i for i in range(442) if i % 3 == 2]
    st = [c.stats(train) for c in cols]

    out = []
    w = out.append
    w("//! scikit-learn's diabetes table (442 patients x 10 features, BSD-3-Clause),")
    w("//! split and losslessly coded for the on-device ridge-regression job.")
    w("//!")
    w("//! GENERATED by `data/diabetes/generate.py` from the vendored raw files in")
    w("//! `data/diabetes/` (see its README for source and licence); do not edit.")
    w("//!")
    w("//! Split: row i (0-based) is validation when i % 3 == 2, else training.")
    w("//! Each column is stored exactly as an integer code")
    w("//! q = value x 10^scale - offset (the generator checks that every code")
    w("//! decodes back to the raw file's value). [`CENTER`] and [`INV_SCALE`]")
    w("//! (training mean of the codes and reciprocal population standard")
    w("//! deviation, as f32) standardise them on the fly:")
    w("//! `(f32::from(q) - CENTER[j]) * INV_SCALE[j]`.")
    w("//!")
    w("//! | column | type | scale | offset | training mean (raw units) | training std (raw units) |")
    w("//! |---|---|---|---|---|---|")
    for c, (_, _, m, s) in zip(cols, st):
        raw_m = (m + c.offset) / 10 ** c.scale
        raw_s = s / 10 ** c.scale
        w(f"//! | {c.name} | `{c.ty}` | 10^{c.scale} | {c.offset} | {raw_m:.6g} | {raw_s:.6g} |")
    w("#![allow(clippy::unreadable_literal)]")
    w("")
    w("/// Features per row.")
    w("pub const D: usize = 10;")
    w("/// Training rows.")
    w(f"pub const N_TRAIN: usize = {len(train)};")
    w("/// Validation rows.")
    w(f"pub const N_VAL: usize = {len(val)};")
    w("/// Feature names, in column order.")
    w("pub const FEATURES: [&str; D] = [")
    w("    " + ", ".join(f'"{n}"' for n in FEATURES) + ",")
    w("];")
    w("")
    w("/// One patient: the ten feature codes in column order, then the target's.")
    w("/// Packed (no padding byte after the odd number of `u8` columns); the")
    w("/// Cortex-M4 reads the unaligned `u16` fields with one `ldrh` each.")
    w("#[derive(Debug, Clone, Copy, PartialEq, Eq)]")
    w("#[repr(C, packed)]")
    w("#[rustfmt::skip]")
    w("pub struct Row(" + ", ".join(f"pub {c.ty}" for c in cols) + ");")
    w("")
    w("/// Training mean of each feature's codes (f32).")
    w("#[rustfmt::skip]")
    w("pub const CENTER: [f32; D] = [" + ", ".join(lit(s[0]) for s in st[:10]) + "];")
    w("/// Reciprocal of the training population standard deviation of each")
    w("/// feature's codes (f32).")
    w("#[rustfmt::skip]")
    w("pub const INV_SCALE: [f32; D] = [" + ", ".join(lit(s[1]) for s in st[:10]) + "];")
    w("/// Training mean of the target's codes (f32).")
    w(f"pub const T_CENTER: f32 = {lit(st[10][0])};")
    w("/// Reciprocal of the training population standard deviation of the")
    w("/// target's codes (f32).")
    w(f"pub const T_INV_SCALE: f32 = {lit(st[10][1])};")

    def table(name, doc, idx):
        w("")
        w(f"/// {doc}")
        w("#[rustfmt::skip]")
        w(f"pub static {name}: [Row; N_{name}] = [")
        for i in idx:
            w("    Row(" + ", ".join(str(c.codes[i]) for c in cols) + "),")
        w("];")

    table("TRAIN", "Training rows.", train)
    table("VAL", "Validation rows (standardised with the training constants).", val)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(out) + "\n")
    widths = ", ".join(f"{c.name} {c.ty}" for c in cols)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(train)} training + {len(val)} validation rows "
          f"({widths}); every value round-trips exactly")


if __name__ == "__main__":
    main()
