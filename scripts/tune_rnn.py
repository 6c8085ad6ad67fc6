#!/usr/bin/env python3
"""Step-size tuning for the RNN experiments (hyper-cleaning and HPO).

    python3 scripts/tune_rnn.py [--specs hyperclean,hpo] [--epochs 2] [--jobs 2]
                                [--algorithms bo-rep,slip,...] [--out docs/results/tuning.md]

For each spec and algorithm, runs `bilevel run` on a copy of the spec with
`epochs` replaced by the short budget (seed 1, no plots) for every point of a
small grid over the algorithm's outer and inner step sizes (every other
hyperparameter: the spec's `algorithm` block, else the registry default),
and scores each point by its final upper loss: the validation loss of the
spec (never a test metric). A run that ends non-finite scores +inf. The
grids, every score and the choice are written to a Markdown file; the
chosen values are then copied by hand into the spec's `algorithm` blocks.

Needs target/release/bilevel (`cargo build --release -p bilevel-runner`).
Deterministic: the same binary and specs give the same scores. Not run in CI.
"""

import argparse
import concurrent.futures
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "bilevel"
# Spec copies live three folders below the root so the specs' relative data
# paths (../../../data/...) still resolve.
WORK = ROOT / "target" / "tune_rnn" / "specs"
RUNS = ROOT / "target" / "tune_rnn" / "runs"

# Per algorithm: (outer key, outer values), (inner key, inner values), and
# fixed settings that tie a secondary step to the inner one.
GRIDS = {
    "bo-rep": (("eta", [0.01, 0.05, 0.1]), ("gamma", [0.05, 0.2, 0.5]), {}),
    "slip": (("eta", [0.01, 0.05, 0.1]), ("gamma", [0.05, 0.2, 0.5]), {}),
    "stocbio": (("outer_lr", None), ("inner_lr", [0.05, 0.2, 0.5]), {}),
    "ttsa": (("outer_lr", None), ("inner_lr", [0.05, 0.2, 0.5]), {}),
    "f2sa": (("outer_lr", None), ("inner_lr", [0.05, 0.2, 0.5]), {"lower_lr": "inner_lr"}),
    "soba": (("outer_ratio", None), ("step_size", [0.1, 0.5, 2.0]), {}),
    "ma-soba": (("outer_lr", None), ("inner_lr", [0.05, 0.2, 0.5]), {}),
}

# The x steps of the methods whose step is not normalised depend on the
# scale of the hypergradient, which differs by orders of magnitude between
# the specs (one weight per training row vs one scalar); their outer grids
# are per spec. SOBA's outer key is the ratio r of its x step rho / r.
_PLAIN = {"stocbio": [1.0, 10.0, 100.0], "ttsa": [1.0, 10.0, 100.0],
          "f2sa": [1.0, 10.0, 100.0], "soba": [1.0, 0.1, 0.01],
          "ma-soba": [1.0, 10.0, 100.0]}
OUTER = {
    "hyperclean": _PLAIN,
    "hyperclean_p01": _PLAIN,
    "hpo": {"stocbio": [0.1, 1.0, 10.0], "ttsa": [0.1, 1.0, 10.0],
            "f2sa": [0.1, 1.0, 10.0], "soba": [1.0, 0.1, 0.01],
            "ma-soba": [0.1, 1.0, 10.0]},
}


def spec_copy(spec: str, epochs: int) -> Path:
    """A copy of examples/specs/rnn/SPEC.bilevel with `epochs = EPOCHS`; the
    grid's values override the spec's `algorithm` blocks through `--set`."""
    src = ROOT / "examples" / "specs" / "rnn" / f"{spec}.bilevel"
    text = src.read_text()
    text, n = re.subn(r"epochs\s*=\s*\d+", f"epochs = {epochs}", text)
    if n != 1:
        sys.exit(f"{src}: expected one `epochs = N` in the run block")
    WORK.mkdir(parents=True, exist_ok=True)
    dst = WORK / f"{spec}.bilevel"
    dst.write_text(text)
    return dst


def algorithm_block(spec_text: str, algorithm: str) -> dict:
    """The key = value pairs of the spec's block for `algorithm`, if any."""
    name = algorithm.replace("-", "_")
    m = re.search(r"^algorithm\s+" + re.escape(name) + r"\s*\{([^}]*)\}", spec_text, re.M)
    if not m:
        return {}
    pairs = {}
    for part in m.group(1).split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            pairs[k.strip()] = v.strip()
    return pairs


def run_point(spec_path: Path, spec: str, algorithm: str, settings: dict) -> dict:
    tag = "_".join(f"{k}={v}" for k, v in settings.items())
    out = RUNS / spec / algorithm / (tag or "default")
    digest = hashlib.sha256(spec_path.read_bytes()).hexdigest()
    config = out / "config.json"
    if (out / "summary.json").exists() and config.exists() \
            and json.loads(config.read_text()).get("spec_sha256") == digest:
        return read_point(out, settings, None, None)
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(BIN), "run", str(spec_path), "--algorithm", algorithm, "--seed", "1",
           "--out", str(out), "--no-plots"]
    for k, v in settings.items():
        cmd += ["--set", f"{k}={v}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return read_point(out, settings, proc.returncode, proc.stderr)


def read_point(out: Path, settings: dict, code, stderr) -> dict:
    """Score of one finished run folder (a run reused from an earlier
    invocation of this script has no exit code)."""
    wall = math.nan
    score = math.inf
    detail = ""
    summary = out / "summary.json"
    if summary.exists():
        s = json.loads(summary.read_text())
        fm = s.get("final_metrics") or s.get("metrics") or {}
        v = fm.get("upper_loss")
        if isinstance(v, (int, float)) and math.isfinite(v):
            score = float(v)
        detail = str(s.get("termination", ""))
        wall = float(s.get("wall_s", math.nan))
    if code not in (None, 0) and not detail:
        detail = ((stderr or "").strip().splitlines() or ["exit %d" % code])[-1]
    return {"settings": settings, "score": score, "wall": wall, "detail": detail}


def fmt(v: float) -> str:
    return "inf (diverged)" if not math.isfinite(v) else f"{v:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", default="hyperclean,hpo")
    ap.add_argument("--algorithms", default=",".join(GRIDS))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "tuning.md"))
    args = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"{BIN} missing: cargo build --release -p bilevel-runner")

    sections = []
    for spec in args.specs.split(","):
        src_text = (ROOT / "examples" / "specs" / "rnn" / f"{spec}.bilevel").read_text()
        path = spec_copy(spec, args.epochs)
        jobs = []
        for algo in args.algorithms.split(","):
            (ok, ovals), (ik, ivals), tied = GRIDS[algo]
            if ovals is None:
                ovals = OUTER[spec][algo]
            for o, i in itertools.product(ovals, ivals):
                settings = {ok: o, ik: i}
                for k, src in tied.items():
                    settings[k] = settings[src]
                jobs.append((algo, settings))
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda j: (j[0], run_point(path, spec, j[0], j[1])), jobs))
            # One extension round: where the best inner step is the top of its
            # grid, try twice and four times that value at the best outer step.
            extra = []
            for algo in args.algorithms.split(","):
                (ok, _), (ik, ivals), tied = GRIDS[algo]
                rows = [r for a, r in results if a == algo]
                best = min(rows, key=lambda r: r["score"])
                if math.isfinite(best["score"]) and best["settings"][ik] == max(ivals):
                    for f in (2, 4):
                        settings = dict(best["settings"])
                        settings[ik] = round(max(ivals) * f, 10)
                        for k, src in tied.items():
                            settings[k] = settings[src]
                        extra.append((algo, settings))
            ext = list(pool.map(lambda j: (j[0], run_point(path, spec, j[0], j[1])), extra))
            for _, r in ext:
                r["extension"] = True
            results += ext
        lines = [f"## {spec}.bilevel ({args.epochs} epochs, seed 1)", ""]
        for algo in args.algorithms.split(","):
            rows = [r for a, r in results if a == algo]
            best = min(rows, key=lambda r: r["score"])
            fixed = algorithm_block(src_text, algo)
            keys = list(rows[0]["settings"])
            lines.append(f"### {algo}")
            lines.append("")
            others = {k: v for k, v in fixed.items() if k not in keys}
            if others:
                lines.append("Other settings (spec block at tuning time): "
                             + ", ".join(f"`{k} = {v}`" for k, v in others.items()) + ".")
                lines.append("")
            lines.append("| " + " | ".join(keys) + " | final upper (val) loss | wall s | note |")
            lines.append("|" + "---|" * (len(keys) + 3))
            for r in rows:
                mark = " **chosen**" if r is best else ""
                if r.get("extension"):
                    mark += " (extension)"
                lines.append("| " + " | ".join(str(r["settings"][k]) for k in keys)
                             + f" | {fmt(r['score'])}{mark} | {r['wall']:.1f} | {r['detail']} |")
            lines.append("")
            lines.append("Choice: " + ", ".join(f"`{k} = {best['settings'][k]}`" for k in keys))
            lines.append("")
            print(f"{spec} {algo}: " + ", ".join(f"{k}={best['settings'][k]}" for k in keys)
                  + f" -> {fmt(best['score'])}", flush=True)
        sections.append("\n".join(lines))
        (ROOT / "target" / "tune_rnn" / f"{spec}.md").write_text(sections[-1] + "\n")
    head = [
        "# Step-size tuning of the RNN experiments",
        "",
        "Generated by `python3 " + " ".join(["scripts/tune_rnn.py"] + sys.argv[1:]) + "` on "
        + time.strftime("%Y-%m-%d", time.gmtime()) + " (" + os.uname().machine + ", "
        + str(os.cpu_count()) + " cores shared with other jobs; wall times are indicative only).",
        "",
        f"Each point: `bilevel run` of the spec with `epochs = {args.epochs}`, seed 1, the "
        "other hyperparameters from the spec's `algorithm` block for that solver if any, "
        "else the registry defaults. Score: the final upper loss (cross-entropy on the "
        "validation split, evaluated on all its rows); lowest wins. Test metrics are "
        "never looked at. `inf` marks a run that ended non-finite or failed. Where the best "
        "inner step is the top of its grid, one extension round tries twice and four times "
        "that value at the best outer step (marked). Wall: the run's own `wall_s`.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(head) + "\n" + "\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
