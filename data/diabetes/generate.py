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

1. Split. Row i (0-based, file order) goes to the validation part when
   i % 3 == 2, else to the training part: 295 training and 147 validation rows.
2. Standardise with the *training* statistics only (the validation part never
   leaks into them): every feature column and the target have the training
   mean subtracted and are divided by the training standard deviation
   (population form, ddof = 0). So on the training part every column and the
   target have mean 0 and variance 1 (which is why the ridge model needs no
   intercept); the validation part is transformed with the same constants.
3. Round every value to the nearest f32 (IEEE round-to-nearest-even, via
   struct.pack) and print it with the shortest decimal literal that parses back
   to exactly that f32, so Rust reads the very same bits.

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
    rows = []
    with gzip.open(path, "rt") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != width:
                sys.exit(f"{path}:{lineno}: expected {width} fields, found {len(parts)}")
            try:
                rows.append([float(p) for p in parts])
            except ValueError as e:
                sys.exit(f"{path}:{lineno}: {e}")
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


def stats(cols):
    n = len(cols)
    mean = sum(cols) / n
    var = sum((c - mean) ** 2 for c in cols) / n
    return mean, var ** 0.5


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

    train = [i for i in range(442) if i % 3 != 2]
    val = [i for i in range(442) if i % 3 == 2]
    mx = [stats([x[i][j] for i in train]) for j in range(10)]
    mt = stats([t[i] for i in train])

    def row(i):
        return [(x[i][j] - mx[j][0]) / mx[j][1] for j in range(10)]

    def target(i):
        return (t[i] - mt[0]) / mt[1]

    out = []
    w = out.append
    w("//! scikit-learn's diabetes table (442 patients x 10 features, BSD-3-Clause),")
    w("//! split and standardised for the on-device ridge-regression job.")
    w("//!")
    w("//! GENERATED by `data/diabetes/generate.py` from the vendored raw files in")
    w("//! `data/diabetes/` (see its README for source and licence); do not edit.")
    w("//!")
    w("//! Split: row i (0-based) is validation when i % 3 == 2, else training.")
    w("//! Every feature and the target are standardised with the training part's")
    w("//! mean and population standard deviation (validation uses the same")
    w("//! constants), then rounded to the nearest f32:")
    w("//!")
    w("//! | column | training mean | training std |")
    w("//! |---|---|---|")
    for name, (m, s) in zip(FEATURES, mx):
        w(f"//! | {name} | {m:.6g} | {s:.6g} |")
    w(f"//! | target | {mt[0]:.6g} | {mt[1]:.6g} |")
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

    def table(name, doc, idx):
        w("")
        w(f"/// {doc}")
        w("#[rustfmt::skip]")
        w(f"pub static {name}_X: [[f32; D]; N_{name}] = [")
        for i in idx:
            w("    [" + ", ".join(lit(v) for v in row(i)) + "],")
        w("];")
        w("")
        w(f"/// Standardised targets of [`{name}_X`]'s rows.")
        w("#[rustfmt::skip]")
        w(f"pub static {name}_T: [f32; N_{name}] = [")
        vals = [lit(target(i)) for i in idx]
        for k in range(0, len(vals), 8):
            w("    " + ", ".join(vals[k:k + 8]) + ",")
        w("];")

    table("TRAIN", "Training rows (standardised features).", train)
    table("VAL", "Validation rows (standardised with the training constants).", val)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(out) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(train)} training + {len(val)} validation rows")


if __name__ == "__main__":
    main()
