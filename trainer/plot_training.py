#!/usr/bin/env python3
"""Plot a `foldspace pretrain` run: training loss per step (raw and smoothed) and validation loss
per sigma band, from <run>/metrics.csv and <run>/val.jsonl.

    python3 trainer/plot_training.py <run dir> <out.png>     (needs matplotlib)
"""
import csv
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, out = sys.argv[1], sys.argv[2]
    steps, losses = [], []
    with open(f"{run}/metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            losses.append(float(row["loss"]))
    if not steps:
        sys.exit(f"{run}/metrics.csv has no rows")
    smooth, avg = [], None
    for v in losses:
        lv = math.log10(max(v, 1e-12))
        avg = lv if avg is None else 0.95 * avg + 0.05 * lv
        smooth.append(10 ** avg)
    val = []
    try:
        with open(f"{run}/val.jsonl") as f:
            val = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="batch loss")
    ax.plot(steps, smooth, lw=1.5, label="smoothed (geometric EMA 0.95)")
    ax.set_yscale("log")
    ax.set_xlabel("step (batch of 32 crops)")
    ax.set_ylabel("DSM loss (train mode)")
    ax.set_title("training")
    ax.legend()
    ax = axes[1]
    for band, colour in (("high", "C3"), ("mid", "C2"), ("low", "C0")):
        xs = [v["step"] for v in val if band in v["report"]["bands"]]
        ys = [v["report"]["bands"][band] for v in val if band in v["report"]["bands"]]
        if xs:
            ax.plot(xs, ys, "o-", color=colour, label=f"{band} sigma band")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("DSM loss (eval mode, weight average)")
    ax.set_title("validation")
    if val:
        ax.legend()
    fig.suptitle(run)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
