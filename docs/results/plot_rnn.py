#!/usr/bin/env python3
"""Zoomed overlay plots for the RNN experiment folders (standard library only).

    python3 docs/results/plot_rnn.py [--range-without SOLVER,...] FOLDER [more folders]

`bilevel compare` already writes plots/ (log axis, full range). Early
transients (a spike of one solver in the first tenth of an epoch) squeeze
every other curve there into a few pixels, so this script redraws the
figures the README shows on a linear axis whose range covers every mean
curve after the first epoch (the first epoch is still drawn, clipped at the
frame). Per solver: the mean over seeds (the seeds of one solver share
their evaluation points; a diverged run drops out after its last point and
is counted in the legend as "div.") and a band from the smallest to the largest seed.
`--range-without` leaves the named solvers out of that range (they are still
drawn, clipped at the frame, and the title says so): one unstable solver
otherwise hides the differences between all the others.
Writes FOLDER/zoom/METRIC_vs_{epochs,calls}.svg.
"""

import json
import math
import sys
from pathlib import Path

METRICS = ["test_loss", "test_accuracy", "train_loss", "train_accuracy", "upper_loss", "ridge"]
AXES = [("epochs", "epoch", "epochs (passes over the training rows)"),
        ("calls", "oracle_calls", "oracle calls")]
ORDER = ["bo-rep", "slip", "stocbio", "ttsa", "f2sa", "soba", "ma-soba", "anil", "maml"]
COLORS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#999999", "#8c510a"]
W, H, L, R, T, B = 860, 480, 70, 190, 40, 55


STOPPED = ("diverged", "non_finite")
stopped = {}


def load(folder: Path):
    runs = {}
    stopped.clear()
    for d in sorted(folder.iterdir()):
        trace = d / "trace.jsonl"
        if not trace.exists():
            continue
        cfg = json.loads((d / "config.json").read_text())
        recs = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
        runs.setdefault(cfg["algorithm"], []).append(recs)
        summary = d / "summary.json"
        if summary.exists() and json.loads(summary.read_text()).get("termination") in STOPPED:
            stopped[cfg["algorithm"]] = stopped.get(cfg["algorithm"], 0) + 1
    order = {a: i for i, a in enumerate(ORDER)}
    return dict(sorted(runs.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def series(seeds, metric, key):
    """Mean and min/max at each evaluation point, over the seeds that reached it
    (a run that stopped early, e.g. diverged, drops out after its last point)."""
    out = []
    for i in range(max(len(s) for s in seeds)):
        live = [s for s in seeds if len(s) > i]
        if any(metric not in s[i]["metrics"] for s in live):
            return []
        # Non-finite values (written as strings) are left out of the point.
        live = [s for s in live if isinstance(s[i]["metrics"][metric], (int, float))
                and math.isfinite(s[i]["metrics"][metric])]
        if not live:
            continue
        vals = [s[i]["metrics"][metric] for s in live]
        xs = [s[i][key] for s in live]
        out.append((sum(xs) / len(xs), sum(vals) / len(vals), min(vals), max(vals)))
    return out


def nice(lo, hi):
    """Round tick values inside (lo, hi): the widest 1-2-5 step giving four or more."""
    span = hi - lo
    steps = [m * 10.0 ** e for e in range(-8, 9) for m in (1, 2, 5)]
    step = max((st for st in steps if span / st >= 4), default=steps[0])
    ticks = []
    t = step * (lo // step + 1)
    while t < hi:
        ticks.append(round(t, 10))
        t += step
    return ticks


def plot(folder: Path, runs, metric, tag, key, label, without=()):
    data = {a: series(s, metric, key) for a, s in runs.items()}
    data = {a: d for a, d in data.items() if d}
    if not data:
        return None
    xmax = max(p[0] for d in data.values() for p in d)
    first_epoch = {a: next((p[0] for p, r in zip(d, runs[a][0]) if r["epoch"] >= 1.0), 0)
                   for a, d in data.items()}
    late = [p[1] for a, d in data.items() for p in d
            if p[0] >= first_epoch[a] and a not in without]
    lo, hi = min(late), max(late)
    pad = 0.08 * (hi - lo or 1e-3)
    lo, hi = lo - pad, hi + pad
    pw, ph = W - L - R, H - T - B

    def sx(x):
        return L + pw * x / xmax

    def sy(y):
        y = min(max(y, lo), hi)
        return T + ph * (1 - (y - lo) / (hi - lo))

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L + pw / 2}" y="22" text-anchor="middle" font-size="15">'
           f'{metric} vs {tag} ({folder.name}; mean, band: min–max over seeds'
           + (f'; range without {", ".join(sorted(w for w in without if w in data))}, clipped'
              if any(w in data for w in without) else '')
           + ')</text>']
    for t in nice(lo, hi):
        svg.append(f'<line x1="{L}" x2="{L + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in [0] + nice(0, xmax):
        svg.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{T}" y2="{T + ph}" stroke="#eee"/>')
        svg.append(f'<text x="{sx(t):.1f}" y="{T + ph + 16}" text-anchor="middle">{t:g}</text>')
    svg.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    svg.append(f'<text x="{L + pw / 2}" y="{H - 12}" text-anchor="middle">{label}</text>')
    svg.append(f'<text x="16" y="{T + ph / 2}" transform="rotate(-90 16 {T + ph / 2})" '
               f'text-anchor="middle">{metric}</text>')
    for k, (a, d) in enumerate(data.items()):
        c = COLORS[k % len(COLORS)]
        band = [f"{sx(x):.1f},{sy(hi_):.1f}" for x, _, _, hi_ in d] + \
               [f"{sx(x):.1f},{sy(lo_):.1f}" for x, _, lo_, _ in reversed(d)]
        svg.append(f'<polygon points="{" ".join(band)}" fill="{c}" fill-opacity="0.15" stroke="none"/>')
        line = " ".join(f"{sx(x):.1f},{sy(m):.1f}" for x, m, _, _ in d)
        svg.append(f'<polyline points="{line}" fill="none" stroke="{c}" stroke-width="1.8"/>')
        y = T + 14 + 20 * k
        svg.append(f'<line x1="{L + pw + 14}" x2="{L + pw + 40}" y1="{y}" y2="{y}" stroke="{c}" stroke-width="3"/>')
        svg.append(f'<text x="{L + pw + 46}" y="{y + 4}">{a} ({len(runs[a])} seeds{f", {stopped[a]} div." if a in stopped else ""})</text>')
    svg.append("</svg>")
    out = folder / "zoom" / f"{metric}_vs_{tag}.svg"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(svg) + "\n")
    return out


def main():
    args = sys.argv[1:]
    without = ()
    if args[:1] == ["--range-without"] and len(args) > 1:
        without = tuple(args[1].split(","))
        args = args[2:]
    if not args:
        sys.exit(__doc__)
    for f in args:
        folder = Path(f)
        runs = load(folder)
        if not runs:
            sys.exit(f"{folder}: no run folders with a trace")
        for metric in METRICS:
            for tag, key, label in AXES:
                p = plot(folder, runs, metric, tag, key, label, without)
                if p:
                    print(p)


if __name__ == "__main__":
    main()
