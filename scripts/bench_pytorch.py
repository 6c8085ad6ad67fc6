#!/usr/bin/env python3
"""PyTorch reference for `cargo bench -p bilevel-runner --bench rnn`.

Same model and shapes as std-runner/benches/rnn.rs: vocabulary 5000, fixed
word vectors of dimension 50, a 2-layer Elman tanh RNN (torch.nn.RNN) over
packed variable-length sequences, max-pooling over each sequence's valid
steps, a linear head to 2 classes, mean cross-entropy; batch 32 with the
same token lengths (20..=60, same generator); f32 on the CPU. Measures
forward+backward (loss.backward()) and one Hessian-vector product of the
loss in all parameters (double backward: grad with create_graph, then the
gradient of <grad, v>), for hidden 256 and 1024 with 1 and 2 threads.

Run through scripts/bench_pytorch.sh (creates the virtualenv). Prints one
Markdown table row per case, with the median and the minimum time of the
timed iterations (the minimum is the figure least disturbed by other
processes on a shared machine; scripts/bench_rnn_table.py compares it with
criterion's fastest sample).
"""
import argparse
import platform
import statistics
import time

import torch

BATCH, VOCAB, EMBED, CLASSES = 32, 5000, 50, 2


def batch():
    """The benchmark batch of benches/rnn.rs (same LCG, same lengths)."""
    state = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1

    def nxt():
        nonlocal state
        state = (state * 6364136223846793005 + 1) & mask
        return state >> 33

    seqs = []
    for _ in range(BATCH):
        n = 20 + nxt() % 41
        seqs.append([nxt() % VOCAB for _ in range(n)])
    return seqs


class Model(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.emb = torch.nn.Embedding(VOCAB, EMBED)
        self.emb.weight.requires_grad_(False)  # fixed word vectors
        self.rnn = torch.nn.RNN(EMBED, hidden, num_layers=2, nonlinearity="tanh", batch_first=True)
        self.head = torch.nn.Linear(hidden, CLASSES)

    def forward(self, tokens, lengths):
        x = self.emb(tokens)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                         enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                        padding_value=float("-inf"))
        return self.head(out.max(dim=1).values)


def timeit(fn, seconds):
    """Median and minimum of the timed iterations (at least 3, after 2 warm-up
    iterations); the minimum is the least disturbed by other processes."""
    for _ in range(2):
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0, help="measurement time per case")
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 1024], help="hidden sizes")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts")
    args = ap.parse_args()
    seqs = batch()
    ntok = sum(len(s) for s in seqs)
    lengths = torch.tensor([len(s) for s in seqs])
    tokens = torch.zeros(BATCH, max(len(s) for s in seqs), dtype=torch.long)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s)
    labels = torch.arange(BATCH) % CLASSES
    print(f"torch {torch.__version__}, python {platform.python_version()}, {ntok} tokens per batch")
    print("| hidden | threads | forward+backward ms (median / min) | tokens/s (median) "
          "| HVP ms (median / min) | HVP / gradient (medians) |")
    print("|---|---|---|---|---|---|")
    for hidden in args.hidden:
        torch.manual_seed(1)
        model = Model(hidden)
        params = [p for p in model.parameters() if p.requires_grad]
        vs = [torch.randn_like(p) * 1e-2 for p in params]
        for threads in args.threads:
            torch.set_num_threads(threads)

            def fwd_bwd():
                model.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(tokens, lengths), labels)
                loss.backward()

            def hvp():
                loss = torch.nn.functional.cross_entropy(model(tokens, lengths), labels)
                g = torch.autograd.grad(loss, params, create_graph=True)
                dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
                return torch.autograd.grad(dot, params)

            tg, tg_min = timeit(fwd_bwd, args.seconds)
            th, th_min = timeit(hvp, args.seconds)
            print(f"| {hidden} | {threads} | {tg * 1e3:.1f} / {tg_min * 1e3:.1f} | {ntok / tg:,.0f} "
                  f"| {th * 1e3:.1f} / {th_min * 1e3:.1f} | {th / tg:.2f} |", flush=True)


if __name__ == "__main__":
    main()
