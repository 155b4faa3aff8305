# Sequence lengths of the chains of each split, and how many 64-residue windows tiling them takes
# (TRAINING.md, "tiled structure windows"). Usage: python3 training/align-tiled/chain-lengths.py ../shared/data/structures/chains.jsonl.gz
import gzip, json, math, statistics, sys
by = {}
for line in gzip.open(sys.argv[1], "rt"):
    c = json.loads(line)
    by.setdefault(c["split"], []).append(len(c["seq"]))
allv = []
for s in ("train", "val", "ppi_test_like"):
    v = by.get(s, []); allv += v
    print(f"{s}: {len(v)} chains, median length {statistics.median(v)}, longer than 64: {sum(x > 64 for x in v) / len(v):.3f}")
v = [x for x in allv if x >= 2]
print(f"all three: {len(v)} chains, mean windows of 64 when tiled: {sum(math.ceil(x / 64) for x in v) / len(v):.2f}")
