#!/usr/bin/env python3
"""How much does the score model's implausibility say about interface residues on its own, and
how much of it is burial? Reads a benchmark file and the plausibility cache `eval-ppi
--plausibility LEVEL` wrote for it (~/.cache/foldspace/eval-ppi/plausibility-<set>-<key>.bin:
magic FSPPIG01, chain count, then per chain its length, the count of residues with a C-alpha and
their ||g_i|| as f32), and prints JSON: the AUROC of each per-residue signal for the interface
label (over residues with a C-alpha), its Spearman correlation with the C-alpha count within
12 Å, the AUROC of ||g_i|| within each third of that count (does it add to burial?), and the
mean AUROC within chains (is it more than a difference between chains?), and how each chain's
interface fraction goes with its length and its mean ||g_i|| (Spearman over chains).

Usage: python3 evaluation/ppi/plausibility-probe.py BENCHMARK.jsonl.gz CACHE.bin
"""
import gzip
import json
import math
import struct
import sys


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def auroc(scores, labels):
    r = ranks(scores)
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    s = sum(ri for ri, l in zip(r, labels) if l)
    return (s - pos * (pos + 1) / 2) / (pos * neg)


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb)


def main(bench, cache):
    chains = [json.loads(l) for l in gzip.open(bench, "rt") if l.strip()]
    data = open(cache, "rb").read()
    assert data[:8] == b"FSPPIG01", "not a plausibility cache"
    (count,) = struct.unpack_from("<I", data, 8)
    assert count == len(chains), f"{count} chains in the cache, {len(chains)} in the file"
    at = 12
    g, smooth, burial, labels, chain_of = [], [], [], [], []
    for c in chains:
        length, n = struct.unpack_from("<II", data, at)
        at += 8
        norms = struct.unpack_from(f"<{n}f", data, at)
        at += 4 * n
        assert length == len(c["seq"]), c["id"]
        ca = c["ca"] or [None] * length
        present = [i for i, x in enumerate(ca) if x is not None]
        if n != len(present):
            continue  # too short to score
        xyz = [ca[i] for i in present]
        for p, i in enumerate(present):
            d = [math.dist(xyz[p], y) for y in xyz]
            near = [norms[q] for q, dq in enumerate(d) if dq <= 15.0]
            g.append(math.log1p(norms[p]))
            smooth.append(math.log1p(sum(near) / len(near)))
            burial.append(sum(1 for dq in d if 0 < dq <= 12.0))
            labels.append(c["label"][i] == "1")
            chain_of.append(c["id"])
    thirds = sorted(burial)
    cuts = [thirds[len(thirds) // 3], thirds[2 * len(thirds) // 3]]
    within = []
    for lo, hi in [(-1, cuts[0]), (cuts[0], cuts[1]), (cuts[1], 10**9)]:
        idx = [k for k, b in enumerate(burial) if lo < b <= hi]
        within.append({
            "neighbours_12A": [lo + 1, hi if hi < 10**9 else max(burial)],
            "residues": len(idx),
            "interface_fraction": sum(labels[k] for k in idx) / len(idx),
            "auroc_gnorm": auroc([g[k] for k in idx], [labels[k] for k in idx]),
        })
    # Within chains: the mean over chains (with both classes) of each signal's AUROC, which no
    # chain-level difference (length, overall plausibility) can produce.
    per_chain = {}
    for k, cid in enumerate(chain_of):
        per_chain.setdefault(cid, []).append(k)

    def within_chains(scores):
        vals = [auroc([scores[k] for k in idx], [labels[k] for k in idx]) for idx in per_chain.values()]
        vals = [v for v in vals if v is not None]
        return {"chains": len(vals), "mean_auroc": sum(vals) / len(vals)}

    # Between chains: each chain's interface fraction against its length and its mean signal.
    frac = [sum(labels[k] for k in idx) / len(idx) for idx in per_chain.values()]
    between = {
        "chains": len(frac),
        "spearman_interface_fraction_vs_length": spearman(
            [len(idx) for idx in per_chain.values()], frac),
        "spearman_interface_fraction_vs_mean_ln1p_gnorm": spearman(
            [sum(g[k] for k in idx) / len(idx) for idx in per_chain.values()], frac),
    }

    out = {
        "benchmark": bench,
        "cache": cache,
        "residues": len(labels),
        "interface_fraction": sum(labels) / len(labels),
        "auroc": {
            "ln1p_gnorm": auroc(g, labels),
            "ln1p_gnorm_mean_15A": auroc(smooth, labels),
            "minus_neighbours_12A": auroc([-b for b in burial], labels),
        },
        "spearman_with_neighbours_12A": {
            "ln1p_gnorm": spearman(g, burial),
            "ln1p_gnorm_mean_15A": spearman(smooth, burial),
        },
        "auroc_gnorm_within_burial_thirds": within,
        "within_chains": {
            "ln1p_gnorm": within_chains(g),
            "ln1p_gnorm_mean_15A": within_chains(smooth),
            "minus_neighbours_12A": within_chains([-b for b in burial]),
        },
        "between_chains": between,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
