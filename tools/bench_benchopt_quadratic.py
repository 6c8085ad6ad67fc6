#!/usr/bin/env python3
"""The BENCHMARKS.md table on benchopt's simulated quadratic (issue 19):
oracle calls and wall time until grad_phi_sq <= 1e-6 (benchopt's `value`),
median and 20-80 % over seeds, each solver at its best step from a grid.

One process at a time (the machine is shared), the release binary:
  cargo build --release -p bilevel-runner --bin bilevel
  python3 tools/bench_benchopt_quadratic.py --solvers saba,srba,soba \
      --grid 0.03,0.1,0.3 --grid-seeds 1 --seeds 1,2,3 --iterations 2000 --eval-every 250
Stage 1 runs every solver x step on the grid seeds and picks, per solver, the
step with the fewest median calls to the target (ties and misses: the
smallest final grad_phi_sq). Stage 2 runs that step on every seed (reusing
stage-1 runs). A run that never reaches the target within the budget counts
as a miss; its median is reported only if at least half the seeds reach it.
Wall time is the run's wall_s at the first record under the target, less the
stationarity metric's own time (decision 94); it is indicative only (load).
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples/specs/benchopt_quadratic.bilevel"
TARGET = 1e-6


def quantile(v, q):
    v = sorted(v)
    if len(v) == 1:
        return v[0]
    p = q * (len(v) - 1)
    i = int(p)
    j = min(i + 1, len(v) - 1)
    return v[i] + (v[j] - v[i]) * (p - i)


def run(tmp, spec, solver, step, seed, iters):
    out = tmp / f"{solver}-{step}-{seed}"
    cmd = [str(ROOT / "target/release/bilevel"), "run", str(spec), "--algorithm", solver,
           "--set", f"step_size={step}", "--seed", str(seed), "--iterations", str(iters),
           "--out", str(out), "--force", "--no-plots"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    trace = out / "trace.jsonl"
    if not trace.exists():
        print(f"  {solver}: does not run on this spec: {r.stderr.strip().splitlines()[-1]}",
              file=sys.stderr, flush=True)
        return None, None
    stat_s, hit, last = 0.0, None, None
    for line in trace.read_text().splitlines():
        rec = json.loads(line)
        m = rec.get("metrics", {})
        stat_s += m.get("stationarity_seconds", 0.0)
        if "grad_phi_sq" not in m:
            continue
        last = m["grad_phi_sq"]
        if hit is None and m.get("stationarity_converged", 0) == 1 and last <= TARGET:
            hit = (rec["oracle_calls"], rec["wall_s"] - stat_s)
    print(f"  {solver} step {step} seed {seed}: "
          + (f"{hit[0]} calls, {hit[1]:.2f} s" if hit else f"not reached (last {last:.3e})"),
          file=sys.stderr, flush=True)
    return hit, last


def summary(results):
    hits = [h for h, _ in results if h]
    if 2 * len(hits) < len(results):
        return None
    # misses count as +inf in the order statistics
    calls = [h[0] if h else float("inf") for h, _ in results]
    wall = [h[1] if h else float("inf") for h, _ in results]
    return calls, wall, len(hits)


def fmt(v):
    return "∞" if v == float("inf") else f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--solvers", default="saba,srba,soba")
    ap.add_argument("--grid", default="0.03,0.1,0.3")
    ap.add_argument("--grid-seeds", default="1")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=250)
    a = ap.parse_args()
    grid = [float(s) for s in a.grid.split(",")]
    gseeds = [int(s) for s in a.grid_seeds.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        (tmp / "data").symlink_to(SPEC.parent / "data")
        text = SPEC.read_text()
        head, _, _ = text.partition("\nrun {")
        spec = tmp / "bq.bilevel"
        spec.write_text(head + f"\nrun {{ iterations = {a.iterations}, seed = 1, eval_every = "
                        f"{a.eval_every}, metrics = [grad_phi_sq, inner_distance] }}\n")
        rows = []
        for solver in a.solvers.split(","):
            cache, best = {}, None
            for step in grid:
                res = [run(tmp, spec, solver, step, s, a.iterations) for s in gseeds]
                cache.update({(step, s): r for s, r in zip(gseeds, res)})
                sm = summary(res)
                if any(last is None for _, last in res):
                    best = ((float("inf"),) * 2, step)
                    break
                key = (statistics.median(sm[0]) if sm else float("inf"),
                       statistics.median([last for _, last in res]))
                if best is None or key < best[0]:
                    best = (key, step)
            step = best[1]
            res = [cache.get((step, s)) or run(tmp, spec, solver, step, s, a.iterations) for s in seeds]
            sm = summary(res)
            lasts = [last for _, last in res]
            if any(last is None for last in lasts):
                rows.append(f"| {solver} | – | – | does not run in `bilevel` on this spec | | |")
            elif sm:
                calls, wall, n = sm
                rows.append(f"| {solver} | {step} | {n}/{len(seeds)} | {fmt(statistics.median(calls))} "
                            f"| {fmt(quantile(calls, .2))}–{fmt(quantile(calls, .8))} "
                            f"| {statistics.median(wall):.2f} ({quantile(wall, .2):.2f}–{quantile(wall, .8):.2f}) |")
            else:
                hits = sum(1 for h, _ in res if h)
                rows.append(f"| {solver} | {step} | {hits}/{len(seeds)} | not reached "
                            f"(final ‖∇Φ‖² median {statistics.median(lasts):.2e}) | | |")
    print("| solver | step_size | seeds reaching 1e-6 | oracle calls, median | 20–80 % | "
          "wall s, median (20–80 %), under load |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
