#!/usr/bin/env python3
"""Loss of stage-1 runs, mean over 50-step blocks, as TRAINING.md's tables show it.

Usage: python3 training/align-tiled/loss-table.py NAME=DIR/metrics.csv ... (from the repository root)
Prints one Markdown row per block start in STARTS (1, 501, 1001, 1501, 1951)."""
import csv
import sys

STARTS = (1, 501, 1001, 1501, 1951)
COLUMNS = ("loss", "sequence_structure", "sequence_text", "structure_text", "views")

for arg in sys.argv[1:]:
    name, path = arg.split("=", 1)
    with open(path, newline="") as f:
        rows = {int(r["step"]): r for r in csv.DictReader(f)}
    for i, start in enumerate(STARTS):
        block = [rows[s] for s in range(start, start + 50) if s in rows]
        if not block:
            continue
        means = [sum(float(r[c]) for r in block) / len(block) for c in COLUMNS]
        label = name if i == 0 else ""
        cells = " | ".join(f"{m:.2f}" for m in means)
        print(f"| {label} | {start}–{start + 49} | {cells} |")
