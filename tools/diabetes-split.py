#!/usr/bin/env python3
"""Writes examples/specs/data/diabetes_raw_{train,val}.csv from the vendored
scikit-learn diabetes files in data/diabetes/ (raw values, as written there:
exact decimals), split as the firmware job splits them (row i is validation
when i % 3 == 2), and prints the training rows' mean and population standard
deviation per column (f64) as the `param` lines of
examples/specs/firmware_ridge.bilevel. Run from the repository root."""
import gzip
import math

COLS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def main():
    with gzip.open("data/diabetes/diabetes_data_raw.csv.gz", "rt") as f:
        rows = [line.split() for line in f if line.strip()]
    with gzip.open("data/diabetes/diabetes_target.csv.gz", "rt") as f:
        target = [line.strip() for line in f if line.strip()]
    assert len(rows) == len(target) == 442
    parts = {"train": [], "val": []}
    for i, (r, t) in enumerate(zip(rows, target)):
        tv = float(t)
        assert tv == int(tv), t
        parts["val" if i % 3 == 2 else "train"].append(r + [str(int(tv))])
    for name, part in parts.items():
        with open(f"examples/specs/data/diabetes_raw_{name}.csv", "w") as f:
            f.write(",".join(COLS + ["target"]) + "\n")
            for r in part:
                f.write(",".join(r) + "\n")
    train = parts["train"]
    stats = []
    for j in range(len(COLS) + 1):
        v = [float(r[j]) for r in train]
        m = sum(v) / len(v)
        sd = math.sqrt(sum((x - m) ** 2 for x in v) / len(v))
        stats.append((m, 1.0 / sd))
    fmt = lambda xs: ", ".join(f"{x:.9g}" for x in xs)
    print(f"param mu: vector[d] = [{fmt(m for m, _ in stats[:-1])}]")
    print(f"param inv_sd: vector[d] = [{fmt(s for _, s in stats[:-1])}]")
    print(f"param t_mu: scalar = {stats[-1][0]:.9g}")
    print(f"param t_inv_sd: scalar = {stats[-1][1]:.9g}")


main()
