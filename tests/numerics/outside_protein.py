#!/usr/bin/env python3
"""Score maps of proteins outside the shared reference set against float64.

`foldspace embed --weights <published checkpoint> --noise-level N` writes each chain's score map
(`score`, L x L) and its C-alpha coordinates; this script rebuilds the network's 149-channel input
from the coordinates and the sequence (docs/score-model.md §2, including PyTorch's matmul form of
`cdist` above 25 residues), runs the published network in float64 (the network code of
f64_reference.py, eval mode) and reports, per output folder given (e.g. one from `--backend cpu`
and one from `--backend wgpu`), the relative error ||ours - f64|| / ||f64|| of every chain's score
map, with the float32 envelope: the same network in float32 with randomised accumulation orders
(`--samples` runs), i.e. how far any correct float32 implementation lands.

    python3 tests/numerics/outside_protein.py --level 59 OUT_CPU OUT_WGPU [--samples 4]

Needs NumPy only; writes evaluation/numerics/outside_protein.json (or --out).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from f64_reference import REPO, Arith, forward, load_safetensors, noise_levels, rel, shared_dir  # noqa: E402

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
ANCHORS = np.concatenate([np.arange(0, 31), np.arange(32, 71, 2), np.arange(73, 101, 3)])


def pair_input(sequence: str, ca: np.ndarray) -> np.ndarray:
    """The (149, L, L) input of docs/score-model.md §2 in float32, as the published code builds it."""
    n = len(sequence)
    onehot = np.zeros((n, 20), np.float32)
    for i, c in enumerate(sequence):
        onehot[i, ALPHABET.index(c)] = 1.0
    k = np.arange(12, dtype=np.float64)
    div = 1000.0 ** (k / 11.0)
    idx = np.arange(n, dtype=np.float64)[:, None]
    penc = np.concatenate([np.sin(idx / div), np.cos(idx / div)], axis=1).astype(np.float32)
    per = np.concatenate([onehot, penc], axis=1)  # (L, 44)
    x = ca.astype(np.float32)
    if n > 25:  # torch.cdist's matmul form, in float32
        a = np.concatenate([-2 * x, (x * x).sum(1, keepdims=True), np.ones((n, 1), np.float32)], 1)
        b = np.concatenate([x, np.ones((n, 1), np.float32), (x * x).sum(1, keepdims=True)], 1)
        d = np.sqrt(np.maximum(a @ b.T, np.float32(1e-30))).astype(np.float32)
    else:
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)).astype(np.float32)
    d = np.clip(d, 0, 100)
    s = np.exp(-((d[..., None] - ANCHORS.astype(np.float32)) ** 2) / np.float32(2 * 9.0)).astype(np.float32)
    denc = s / (s.sum(-1, keepdims=True) + np.float32(1e-6))  # (L, L, 61)
    cols = np.broadcast_to(per[None, :, :], (n, n, 44))  # channel c at (i, j) = per[j]
    rows = np.broadcast_to(per[:, None, :], (n, n, 44))  # per[i]
    return np.concatenate([cols, rows, denc], axis=-1).transpose(2, 0, 1).astype(np.float32)


def chains(folder: Path):
    for meta_path in sorted(folder.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if "sequence" not in meta:
            continue
        npz = np.load(meta_path.with_suffix(".npz"))
        yield meta_path.stem, meta, npz["ca"], npz["score"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="`foldspace embed --out` folders")
    ap.add_argument("--level", type=int, required=True, help="the noise level they were embedded at")
    ap.add_argument("--samples", type=int, default=4, help="randomised float32 runs per chain")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "evaluation/numerics/outside_protein.json")
    args = ap.parse_args()
    wts = load_safetensors(shared_dir() / "reference/model_trgt_opt.safetensors")
    sigma = float(noise_levels()[args.level])
    rng = np.random.default_rng(args.seed)
    result = {"command": "python3 tests/numerics/outside_protein.py " + " ".join(sys.argv[1:]),
              "level": args.level, "sigma": sigma, "chains": {}}
    reference = {}
    for folder in args.folders:
        for name, meta, ca, score in chains(folder):
            if meta["noise_level"] != args.level:
                sys.exit(f"{folder}/{name}: embedded at level {meta['noise_level']}, not {args.level}")
            entry = result["chains"].setdefault(name, {"length": meta["length"], "ours": {}})
            if name not in reference:
                t0 = time.time()
                inputs = pair_input(meta["sequence"], ca)
                f64, _ = forward(Arith(np.float64), wts, inputs, args.level, "eval")
                spread = []
                for _ in range(args.samples):
                    ar = Arith(np.float32, np.random.default_rng(rng.integers(2**63)))
                    f32, _ = forward(ar, wts, inputs, args.level, "eval")
                    spread.append(rel(f32, f64))
                reference[name] = f64
                entry["f32_envelope"] = {"max": max(spread), "mean": float(np.mean(spread)),
                                         "samples": len(spread)}
                print(f"{name} (L={meta['length']}): float64 + {args.samples} float32 runs in "
                      f"{time.time() - t0:.0f} s; float32 envelope max {max(spread):.2e}", flush=True)
            err = rel(score, reference[name])
            entry["ours"][meta.get("backend", str(folder))] = err
            print(f"  {meta.get('backend', folder)}: score map {err:.2e} from float64")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
