#!/usr/bin/env python3
"""Writes the data tables of benchopt's logistic-regression and data-cleaning
problems, on the shippable scikit-learn tables that stand in for benchopt's
ijcnn1, covtype and MNIST (see data/benchopt/README.md for why these).

Usage (from the repository root):

    python3 tools/gen_benchopt_tables.py              # from the vendored raw files
    python3 tools/gen_benchopt_tables.py --from-wheel # re-extract them from the
                                                      # scikit-learn wheel on PyPI first

Input (byte-for-byte copies of `sklearn/datasets/data/` in the scikit-learn
1.9.1 wheel, checked by SHA-256 below):
  data/benchopt/raw/breast_cancer.csv  569 rows, 30 features, class 0/1
  data/benchopt/raw/digits.csv.gz      1,797 rows, 64 pixels (0..16), class 0..9

Output (gzip TSV with a header, written without name or timestamp, so the
bytes are reproducible): data/benchopt/*.tsv.gz, see the README. What the
script does, in this order:

1. Permutation. Rows are permuted by a Fisher-Yates shuffle driven by
   splitmix64 (seeded per problem; written out here so any language can
   redo it), then cut into contiguous parts.
2. Splits, following benchopt's datasets/ as far as the sizes allow:
   * logreg binary (ijcnn1 stand-in): breast_cancer, train 285 / val 284
     (ijcnn1 ships separate train and test files; benchopt uses the test
     file as validation; here the one table is halved);
   * logreg multinomial (covtype stand-in): digits, covtype's rule
     `train_test_split(test_size=.2)` twice: test 360, then val 288 of the
     remaining 1,437, train 1,149;
   * data cleaning (MNIST stand-in): digits, train 1,000 / val 250 /
     test 547 (benchopt: 20,000 / 5,000 of MNIST's 60,000 training images,
     the same 4:1 train:val ratio).
3. Standardisation with the *training* part's mean and population standard
   deviation (ddof = 0, as sklearn's StandardScaler; a column of zero
   variance is only centred, as StandardScaler does), applied to every part.
   Values are written with 9 significant digits.
4. Labels: binary `y` in {0, 1} (1 = benign, sklearn's coding; the spec maps
   it to +-1 with `pm1`); multinomial `label` in 0..9.
5. Data cleaning only: benchopt's corruption rule on the training part,
   `corrupted = rng.rand(n_train) < ratio; y[corrupted] = randint(0, 10)`
   with ratio 0.5 (its first configuration): a corrupted row gets a class
   drawn uniformly from all 10, so about 1/10 of them keep their class.
   The train file has `label` (possibly corrupted), `clean` (the true
   class) and `corrupted` (1 when the row was drawn for corruption).

Only the Python standard library is used; the output is deterministic.
"""

import argparse
import gzip
import hashlib
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "benchopt"
RAW = OUT / "raw"
WHEEL_VERSION = "1.9.1"
RAW_SHA256 = {
    "breast_cancer.csv": "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed",
    "digits.csv.gz": "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
}
MASK = (1 << 64) - 1


class SplitMix64:
    """splitmix64 (Steele, Lea, Flood 2014); uniform() is the top 53 bits."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) / float(1 << 53)

    def below(self, n):
        """Uniform integer in 0..n (rejection sampling, no modulo bias)."""
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            v = self.next()
            if v < limit:
                return v % n

    def permutation(self, n):
        p = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.below(i + 1)
            p[i], p[j] = p[j], p[i]
        return p


def from_wheel():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
             f"scikit-learn=={WHEEL_VERSION}"],
            check=True,
        )
        wheels = sorted(pathlib.Path(tmp).glob("scikit_learn-*.whl"))
        if not wheels:
            sys.exit("pip download produced no scikit-learn wheel")
        RAW.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as z:
            for name in RAW_SHA256:
                (RAW / name).write_bytes(z.read(f"sklearn/datasets/data/{name}"))
            (RAW / "LICENSE-scikit-learn").write_bytes(
                z.read(f"scikit_learn-{WHEEL_VERSION}.dist-info/licenses/COPYING"))
        print(f"extracted {', '.join(RAW_SHA256)} from {wheels[0].name}")


def read_raw(name):
    data = (RAW / name).read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != RAW_SHA256[name]:
        sys.exit(f"{RAW / name}: SHA-256 {got}, expected {RAW_SHA256[name]}")
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.decode("ascii").splitlines()


def breast_cancer():
    lines = read_raw("breast_cancer.csv")
    n, d = (int(v) for v in lines[0].split(",")[:2])
    rows = [line.split(",") for line in lines[1:] if line.strip()]
    assert len(rows) == n and all(len(r) == d + 1 for r in rows), "breast_cancer shape"
    return [[float(v) for v in r[:d]] for r in rows], [int(r[d]) for r in rows]


def digits():
    rows = [line.split(",") for line in read_raw("digits.csv.gz") if line.strip()]
    assert len(rows) == 1797 and all(len(r) == 65 for r in rows), "digits shape"
    return [[float(v) for v in r[:64]] for r in rows], [int(float(r[64])) for r in rows]


def standardiser(xs):
    d = len(xs[0])
    n = len(xs)
    mean = [sum(r[j] for r in xs) / n for j in range(d)]
    sd = []
    for j in range(d):
        var = sum((r[j] - mean[j]) ** 2 for r in xs) / n
        sd.append(var ** 0.5 if var > 0.0 else 1.0)
    return lambda r: [(v - m) / s for v, m, s in zip(r, mean, sd)]


def num(v):
    s = f"{v:.9g}"
    return "0" if s in ("0", "-0") else s


def write(name, header, rows):
    buf = io.StringIO()
    buf.write("\t".join(header) + "\n")
    for r in rows:
        buf.write("\t".join(r) + "\n")
    raw = buf.getvalue().encode("ascii")
    path = OUT / name
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(raw)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{name}\t{len(rows)} rows\t{path.stat().st_size} B\t{digest}")


def split(x, y, seed, sizes):
    perm = SplitMix64(seed).permutation(len(x))
    parts, at = [], 0
    for k in sizes:
        idx = perm[at:at + k]
        parts.append(([x[i] for i in idx], [y[i] for i in idx]))
        at += k
    assert at == len(x)
    return parts


def logreg_binary():
    x, y = breast_cancer()
    (xt, yt), (xv, yv) = split(x, y, 0xB1, [285, 284])
    std = standardiser(xt)
    header = ["y"] + [f"x{j:02}" for j in range(30)]
    for name, xs, ys in (("breast_cancer_train", xt, yt), ("breast_cancer_val", xv, yv)):
        write(f"{name}.tsv.gz", header, [[str(c)] + [num(v) for v in std(r)] for r, c in zip(xs, ys)])


def logreg_multinomial():
    x, y = digits()
    (xt, yt), (xv, yv), (xs_, ys_) = split(x, y, 0xC0, [1149, 288, 360])
    std = standardiser(xt)
    header = ["label"] + [f"p{j:02}" for j in range(64)]
    for name, xs, ys in (("digits_multi_train", xt, yt), ("digits_multi_val", xv, yv),
                         ("digits_multi_test", xs_, ys_)):
        write(f"{name}.tsv.gz", header, [[str(c)] + [num(v) for v in std(r)] for r, c in zip(xs, ys)])


def data_cleaning(ratio=0.5):
    x, y = digits()
    (xt, yt), (xv, yv), (xs_, ys_) = split(x, y, 0xDC, [1000, 250, 547])
    std = standardiser(xt)
    rng = SplitMix64(0xDC05)
    corrupted = [rng.uniform() < ratio for _ in yt]
    noisy = [rng.below(10) if c else lab for c, lab in zip(corrupted, yt)]
    pix = [f"p{j:02}" for j in range(64)]
    write("digits_clean_train.tsv.gz", ["label", "clean", "corrupted"] + pix,
          [[str(a), str(b), str(int(c))] + [num(v) for v in std(r)]
           for r, a, b, c in zip(xt, noisy, yt, corrupted)])
    for name, xs, ys in (("digits_clean_val", xv, yv), ("digits_clean_test", xs_, ys_)):
        write(f"{name}.tsv.gz", ["label"] + pix, [[str(c)] + [num(v) for v in std(r)] for r, c in zip(xs, ys)])
    changed = sum(a != b for a, b in zip(noisy, yt))
    print(f"data cleaning: {sum(corrupted)} of {len(yt)} training rows drawn for corruption, "
          f"{changed} labels changed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from-wheel", action="store_true",
                    help="re-extract the raw files from the scikit-learn wheel first")
    args = ap.parse_args()
    if args.from_wheel:
        from_wheel()
    OUT.mkdir(parents=True, exist_ok=True)
    logreg_binary()
    logreg_multinomial()
    data_cleaning()


if __name__ == "__main__":
    main()
