#!/usr/bin/env python3
"""Prints the Markdown table of `cargo bench -p bilevel-core --bench iteration`
from criterion's estimates (target/criterion/*/new/estimates.json)."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def mean_ns(group, dtype, d):
    p = root / group / dtype / f"d{d}" / "new" / "estimates.json"
    if not p.exists():
        # criterion flattens "a/b" parameters into "a_b" directories
        p = root / group.replace("/", "_") / f"{dtype}_d{d}" / "new" / "estimates.json"
    e = json.loads(p.read_text())
    return e["mean"]["point_estimate"], e["mean"]["confidence_interval"]


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


print("| solver | scalar | d | time per iteration | null-oracle iteration | share outside oracles |")
print("|---|---|---|---|---|---|")
for solver in ["borep", "slip"]:
    for dtype in ["f64", "f32"]:
        for d in [10, 100, 1000]:
            real, ci = mean_ns(f"{solver}/quadratic", dtype, d)
            null, _ = mean_ns(f"{solver}/null", dtype, d)
            print(
                f"| {'BO-REP' if solver == 'borep' else 'SLIP'} | {dtype} | {d} | {fmt(real)} "
                f"(95% CI {fmt(ci['lower_bound'])}–{fmt(ci['upper_bound'])}) | {fmt(null)} | "
                f"{100 * null / real:.2f} % |"
            )
