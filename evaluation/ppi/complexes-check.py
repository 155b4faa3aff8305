#!/usr/bin/env python3
"""Can the structure file give interface labels? Checks whether the chains of one PDB entry in
../shared/data/structures/chains.jsonl.gz keep the entry's common frame (then the residues of a
chain near another chain of the entry would be its interface, a label source for a network
trained on complexes), and whether the PPI benchmark's chains share coordinates with it.

Usage: python3 evaluation/ppi/complexes-check.py STRUCTURES.jsonl.gz PPI_DIR > out.json
Pure Python (no numpy); about a minute.
"""
import gzip
import json
import math
import statistics
import sys
from collections import defaultdict


def coords(ca):
    ca = json.loads(ca) if isinstance(ca, str) else ca
    return [c for c in ca if c is not None]


def centroid(xs):
    n = len(xs)
    return [sum(x[k] for x in xs) / n for k in range(3)]


def rg(xs):
    c = centroid(xs)
    return math.sqrt(sum(sum((x[k] - c[k]) ** 2 for k in range(3)) for x in xs) / len(xs))


def main():
    structures, ppi = sys.argv[1], sys.argv[2]
    entries = defaultdict(dict)
    with gzip.open(structures, "rt") as f:
        for line in f:
            d = json.loads(line)
            entries[d["pdb_id"]][d["chain"]] = coords(d["ca"])
    all_centroids = [math.dist(centroid(x), [0, 0, 0]) for e in entries.values() for x in e.values() if x]
    multi = {k: v for k, v in entries.items() if len(v) > 1}
    # In a real complex two chains touch: some C-alpha pair under 8 Å, and their centres lie
    # about a radius of gyration apart. Chains each moved to the origin overlap instead.
    centre_gap, overlap = [], 0
    for chains in multi.values():
        xs = [x for x in chains.values() if x]
        for i in range(len(xs)):
            for j in range(i + 1, len(xs)):
                gap = math.dist(centroid(xs[i]), centroid(xs[j]))
                centre_gap.append(gap / max(rg(xs[i]), rg(xs[j])))
                # Fraction of C-alphas of the smaller chain within 3 Å of the other's: ~0 in
                # any real structure (C-alphas of different chains never come that close).
                small, big = sorted((xs[i], xs[j]), key=len)
                close = sum(1 for a in small if min(math.dist(a, b) for b in big) < 3.0)
                overlap += close / len(small) > 0.05
    pairs = len(centre_gap)
    # The benchmark's chains: their own coordinates, compared with the same chain here.
    same, compared, bench, bench_centred = 0, 0, 0, 0
    for name in ("Train_335", "Test_60", "Test_315"):
        with gzip.open(f"{ppi}/{name}.jsonl.gz", "rt") as f:
            for line in f:
                d = json.loads(line)
                pid, ch = d["id"][:4].upper(), d["id"][4:]
                mine = entries.get(pid, {}).get(ch)
                theirs = [c for c in d["ca"] if c is not None] if d.get("ca") else []
                if theirs:
                    bench += 1
                    bench_centred += math.dist(centroid(theirs), [0, 0, 0]) < 0.01
                if not mine or not theirs or len(mine) != len(theirs):
                    continue
                compared += 1
                same += max(math.dist(a, b) for a, b in zip(mine, theirs)) < 0.01
    json.dump(
        {
            "structures": structures,
            "chains": sum(len(v) for v in entries.values()),
            "entries": len(entries),
            "entries_with_several_chains": len(multi),
            "chains_in_those_entries": sum(len(v) for v in multi.values()),
            "chains_centred_at_origin_within_0.01_A": sum(d < 0.01 for d in all_centroids),
            "max_centroid_distance_from_origin_A": max(all_centroids),
            "chain_pairs_in_one_entry": pairs,
            "median_centre_distance_over_larger_radius_of_gyration": statistics.median(centre_gap),
            "pairs_overlapping_more_than_5_percent_within_3_A": overlap,
            "benchmark_chains_with_coordinates": bench,
            "benchmark_chains_centred_at_origin_within_0.01_A": bench_centred,
            "benchmark_chains_compared_same_length": compared,
            "benchmark_chains_with_identical_coordinates": same,
        },
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
