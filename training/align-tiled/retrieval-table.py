#!/usr/bin/env python3
"""TRAINING.md's retrieval rows from `eval-retrieval --json` outputs.

Usage: python3 training/align-tiled/retrieval-table.py NAME=FILE.json ... (from the repository root)
One Markdown row per file (t→p MAP, R@1, R@10, p→t MAP, zero-shot Fmax, transfer Fmax); with
`--towers`, also each file's two towers alone (the towers do not depend on the weight)."""
import json
import sys


def row(name, weight, d, transfer=True):
    t, p = d["text_to_protein"], d["protein_to_text"]
    cells = [t["map"], t["r1"], t["r10"], p["map"], d["go_mf_fmax"]]
    out = " | ".join(f"{c:.3f}" for c in cells)
    tr = f"{d['go_mf_fmax_transfer']['fmax']:.3f}" if transfer else ""
    return f"| {name} | {weight} | {out} | {tr} |"


towers = "--towers" in sys.argv
for arg in (a for a in sys.argv[1:] if a != "--towers"):
    name, path = arg.split("=", 1)
    with open(path) as f:
        d = json.load(f)
    print(row(name, f"{d['structure_weight']:g}", d))
    if towers:
        for tower in ("sequence", "structure"):
            print(row(name, f"{tower} tower alone", d["towers"][tower], transfer=False))
