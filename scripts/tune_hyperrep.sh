#!/usr/bin/env bash
# Step-size sweep for the hyper-representation figure: every algorithm
# (MAML on its own spec, hyperrep_maml.bilevel) at eight values of its outer
# step (levels 1-8, each about 3x the previous), 2 epochs, seed 1, scored by
# the final upper (query) loss. Writes docs/results/hyperrep/tuning/.
# `LEVELS="5 6"` runs some levels only. Not part of CI; about 1.5 minutes per
# level on 2 quiet cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p bilevel-runner
bin=target/release/bilevel
out=docs/results/hyperrep/tuning
mkdir -p "$out"
spec=examples/specs/rnn/hyperrep.bilevel
algos=bo-rep,slip,anil,stocbio,ttsa,f2sa,soba,ma-soba,maml@examples/specs/rnn/hyperrep_maml.bilevel
# Common inner settings; the swept outer step per solver (low mid high).
common=(
  --set bo-rep:gamma=0.1 --set slip:gamma=0.1
  --set anil:inner_lr=0.1 --set anil:inner_steps=3 --set anil:meta_batch=4
  --set maml:inner_lr=0.1 --set maml:inner_steps=3 --set maml:meta_batch=4
  --set stocbio:inner_lr=0.1 --set stocbio:inner_steps=3 --set stocbio:neumann_steps=5 --set stocbio:hessian_lr=0.1
  --set ttsa:inner_lr=0.1 --set ttsa:hessian_lr=0.1 --set ttsa:neumann_terms=5
  --set f2sa:inner_lr=0.1 --set f2sa:lower_lr=0.1 --set f2sa:inner_steps=3
  --set soba:step_size=0.1
  --set ma-soba:inner_lr=0.1
)
declare -A grid=(
  [bo-rep]="eta 0.003 0.01 0.03 0.1 0.3 1 3 10"
  [slip]="eta 0.003 0.01 0.03 0.1 0.3 1 3 10"
  [anil]="outer_lr 0.01 0.03 0.1 0.3 1 3 10 30"
  [maml]="outer_lr 0.01 0.03 0.1 0.3 1 3 10 30"
  [stocbio]="outer_lr 0.03 0.1 0.3 1 3 10 30 100"
  [ttsa]="outer_lr 0.03 0.1 0.3 1 3 10 30 100"
  [f2sa]="outer_lr 0.03 0.1 0.3 1 3 10 30 100"
  [soba]="outer_ratio 10 3 1 0.3 0.1 0.03 0.01 0.003"
  [ma-soba]="outer_lr 0.03 0.1 0.3 1 3 10 30 100"
)
for level in ${LEVELS:-1 2 3 4 5 6 7 8}; do
  sets=()
  for a in "${!grid[@]}"; do
    read -r key v1 v2 v3 v4 v5 v6 v7 v8 <<< "${grid[$a]}"
    vals=("$v1" "$v2" "$v3" "$v4" "$v5" "$v6" "$v7" "$v8")
    sets+=(--set "$a:$key=${vals[$((level - 1))]}")
  done
  # --force: a rerun of the sweep replaces its earlier runs (run folders refuse reuse).
  "$bin" compare "$spec" --algorithms "$algos" --seeds 1 --epochs 2 --no-plots --force \
    "${common[@]}" "${sets[@]}" --out "$out/level$level" 2> "$out/level$level.log" || true
done
# One line per algorithm and level: the swept value and the final upper loss.
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
rows = []
for lv in (1, 2, 3, 4, 5, 6, 7, 8):
    for run in sorted((out / f"level{lv}").glob("*-s1")) if (out / f"level{lv}").exists() else []:
        cfg = json.loads((run / "config.json").read_text())
        summ = json.loads((run / "summary.json").read_text())
        m = summ.get("final_metrics", {})
        rows.append((cfg["algorithm"], lv, m.get("upper_loss"), m.get("test_accuracy"), summ["termination"]))
with open(out / "scores.md", "w") as f:
    f.write("| algorithm | level | upper loss (query) | test accuracy (not used to choose) | termination |\n|---|---|---|---|---|\n")
    for a, lv, u, acc, t in sorted(rows):
        f.write(f"| {a} | {lv} | {u:.4f} | {acc:.4f} | {t} |\n")
print((out / "scores.md").read_text())
PY
