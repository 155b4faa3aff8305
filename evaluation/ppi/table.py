#!/usr/bin/env python3
"""Markdown rows of `foldspace eval-ppi --json` outputs: mean ± std over the seeds of each test set,
and the validation carve-out's AUPRC (mean over the seeds; the only number a choice may use).

Usage: python3 evaluation/ppi/table.py [--test Test_60] "label=path.json" (the last "=" splits) ...
"""
import json
import sys

METRICS = ["acc", "precision", "recall", "f1", "mcc", "auroc", "auprc"]


def main(argv):
    tests = []
    rows = []
    i = 0
    while i < len(argv):
        if argv[i] == "--test":
            tests.append(argv[i + 1])
            i += 2
            continue
        label, path = argv[i].rsplit("=", 1)
        rows.append((label, json.load(open(path))))
        i += 1
    if not rows:
        sys.exit(__doc__)
    names = tests or sorted({t for _, d in rows for t in d["tests"]})
    for name in names:
        print(f"\n**{name}**\n")
        print("| run | " + " | ".join(m.upper() if m in ("acc", "mcc", "auroc", "auprc") else m for m in METRICS) + " | val AUPRC |")
        print("|---" * (len(METRICS) + 2) + "|")
        for label, d in rows:
            t = d["tests"].get(name)
            if t is None:
                continue
            cells = [f"{t[m]['mean']:.3f} ± {t[m]['std']:.3f}" for m in METRICS]
            val = sum(r["val_auprc"] for r in d["runs"]) / len(d["runs"])
            print(f"| {label} | " + " | ".join(cells) + f" | {val:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
