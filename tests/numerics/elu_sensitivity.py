#!/usr/bin/env python3
"""Which float32 errors the published network amplifies at low noise (BENCHMARKS.md, issue 18).

On one embedded chain (a `foldspace embed --out` folder's .json/.npz, e.g. 1a8o_A), the float64
network of f64_reference.py at `--level` is run once exactly and then with one kind of error
injected everywhere it can occur; each line is the relative change of the score map:
- the 61 distance-encoding channels of the input times (1 + u·k·2^-24), u ~ U(-1, 1);
- every batch-norm scale 1/sqrt(var + eps) times (1 + u·k·2^-24);
- every ELU output of the negative branch times (1 + u·k·2^-24) (a relative error);
- every ELU output of the negative branch plus u·k·2^-24 (an absolute error, as an `expm1`
  built from approximate `exp` and `ln` has near zero).

    python3 tests/numerics/elu_sensitivity.py DIR/1a8o_A.json --level 59

Writes evaluation/numerics/elu_sensitivity.json (or --out).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from f64_reference import REPO, Arith, forward, load_safetensors, rel, shared_dir  # noqa: E402
from outside_protein import pair_input  # noqa: E402

ULP = 2.0**-24


class Injected(Arith):
    """float64 arithmetic with one kind of error injected."""

    def __init__(self, kind, k, rng):
        super().__init__(np.float64)
        self.kind, self.k, self.r = kind, k, rng

    def noise(self, shape):
        return self.r.uniform(-1, 1, shape) * self.k * ULP

    def elu(self, x):
        y = np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
        if self.kind == "elu_relative":
            return np.where(x <= 0, y * (1 + self.noise(x.shape)), y)
        if self.kind == "elu_absolute":
            return np.where(x <= 0, y + self.noise(x.shape), y)
        return y

    def cbn(self, x, mean, var, gamma, beta):
        if self.kind != "bn_scale":
            return super().cbn(x, mean, var, gamma, beta)
        a = 1 / np.sqrt(np.asarray(var, np.float64) + 1e-5)
        a = a * (1 + self.noise(a.shape))
        xn = x * a[:, None, None] - (np.asarray(mean, np.float64) * a)[:, None, None]
        return xn * gamma[:, None, None] + beta[:, None, None]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("chain", type=Path, help="an embedded chain's .json (its .npz beside it)")
    ap.add_argument("--level", type=int, default=59)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "evaluation/numerics/elu_sensitivity.json")
    args = ap.parse_args()
    wts = load_safetensors(shared_dir() / "reference/model_trgt_opt.safetensors")
    meta = json.loads(args.chain.read_text())
    ca = np.load(args.chain.with_suffix(".npz"))["ca"]
    inputs = pair_input(meta["sequence"], ca).astype(np.float64)
    ref, _ = forward(Arith(np.float64), wts, inputs, args.level, "eval")
    rng = np.random.default_rng(args.seed)
    rows = []
    for kind, k in [("inputs", 1), ("inputs", 16), ("bn_scale", 2), ("bn_scale", 8),
                    ("elu_relative", 4), ("elu_absolute", 1), ("elu_absolute", 4)]:
        if kind == "inputs":
            p = inputs.copy()
            p[88:] = p[88:] * (1 + rng.uniform(-1, 1, p[88:].shape) * k * ULP)
            out, _ = forward(Arith(np.float64), wts, p, args.level, "eval")
        else:
            out, _ = forward(Injected(kind, k, rng), wts, inputs, args.level, "eval")
        err = rel(out, ref)
        rows.append({"error": kind, "ulps": k, "score_map_rel_change": err})
        print(f"{kind:13s} {k:2d} ulp -> score map {err:.2e}", flush=True)
    result = {"command": "python3 tests/numerics/elu_sensitivity.py " + " ".join(sys.argv[1:]),
              "chain": meta.get("file", str(args.chain)) + " " + meta.get("chain", ""),
              "level": args.level, "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
