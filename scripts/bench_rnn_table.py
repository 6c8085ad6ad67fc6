#!/usr/bin/env python3
"""Prints the RNN table of BENCHMARKS.md from one session's measurements:
criterion's samples of `cargo bench -p bilevel-runner --bench rnn`
(target/criterion/rnn_h*_t*/{forward_backward,hvp,hvp_grad}/new/sample.json)
and the output of scripts/bench_pytorch.sh saved to a file. `hvp` is the
Hessian-vector product alone, `hvp_grad` the same product fused with the
gradient (PyTorch's double backward always computes the gradient too).

Usage: scripts/bench_rnn_table.py PYTORCH_OUTPUT [CRITERION_DIR]

For each case: the median and the minimum time per iteration on each side,
tokens per second from the medians, the Rust ÷ PyTorch throughput ratio from
the medians and from the minima (the minimum is the figure least disturbed
by other processes on a shared machine), and HVP ÷ gradient from the medians
and from the minima.
A case missing from the PyTorch output gets dashes.
"""
import json
import pathlib
import re
import statistics
import sys

TOKENS = 1292  # tokens in the benchmark batch (both sides print it)


def rust_times(root, hidden, threads, what):
    p = root / f"rnn_h{hidden}_t{threads}" / what / "new" / "sample.json"
    d = json.loads(p.read_text())
    per_iter = [t / n for t, n in zip(d["times"], d["iters"])]
    return statistics.median(per_iter) / 1e6, min(per_iter) / 1e6  # ms


def pytorch_times(path):
    rows = {}
    pat = re.compile(r"^\| (\d+) \| (\d+) \| ([\d.]+) / ([\d.]+) \| [\d,]+ \| ([\d.]+) / ([\d.]+) \|")
    for line in pathlib.Path(path).read_text().splitlines():
        m = pat.match(line)
        if m:
            h, t, gmed, gmin, hmed, hmin = m.groups()
            rows[(int(h), int(t))] = (float(gmed), float(gmin), float(hmed), float(hmin))
    return rows


def ms(x):
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def main():
    torch = pytorch_times(sys.argv[1])
    root = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "target/criterion")
    print("| hidden | threads | Rust fwd+bwd ms (median / min) | Rust tokens/s | "
          "PyTorch fwd+bwd ms (median / min) | PyTorch tokens/s | Rust ÷ PyTorch throughput "
          "(medians / minima) | Rust HVP ms (median / min) | Rust HVP ÷ grad (medians / minima) | "
          "Rust HVP + grad ms (median / min) | PyTorch HVP ms (median / min) | PyTorch HVP ÷ grad |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for hidden in (256, 1024):
        for threads in (1, 2):
            gmed, gmin = rust_times(root, hidden, threads, "forward_backward")
            hmed, hmin = rust_times(root, hidden, threads, "hvp")
            bmed, bmin = rust_times(root, hidden, threads, "hvp_grad")
            rust_hvp = (f"| {ms(hmed)} / {ms(hmin)} | **{hmed / gmed:.2f}** / {hmin / gmin:.2f} "
                        f"| {ms(bmed)} / {ms(bmin)} ")
            if (hidden, threads) not in torch:
                print(f"| {hidden} | {threads} | {ms(gmed)} / {ms(gmin)} | "
                      f"{TOKENS / gmed * 1e3:,.0f} | – | – | – {rust_hvp}| – | – |")
                continue
            pg, pgmin, ph, phmin = torch[(hidden, threads)]
            print(f"| {hidden} | {threads} | {ms(gmed)} / {ms(gmin)} | {TOKENS / gmed * 1e3:,.0f} "
                  f"| {ms(pg)} / {ms(pgmin)} | {TOKENS / pg * 1e3:,.0f} "
                  f"| **{pg / gmed:.2f}×** / {pgmin / gmin:.2f}× "
                  f"{rust_hvp}| {ms(ph)} / {ms(phmin)} | {ph / pg:.2f} |")


if __name__ == "__main__":
    main()
