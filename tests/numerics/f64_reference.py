#!/usr/bin/env python3
"""Float64 reference of the published score network and its DSM loss, and the float32 envelope.

Why: the golden vectors in ../shared/reference/golden are PyTorch *float32* results. On
ill-conditioned cases (the 32x32 train-mode crop) a correct float32 implementation can sit
measurably away from them, so test tolerances should come from analysis, not from trial:

1. recompute every golden case in float64 (NumPy, same weights, same golden float32 inputs) and
   report how far the golden float32 results are from it;
2. run the same network in float32 `--samples` times with randomised but legitimate
   accumulation orders (input channels and kernel taps of every convolution permuted and split
   into randomly many partial matmuls; batch statistics summed over randomly permuted, randomly
   chunked pixels; the batch-norm formula picked among the algebraically equal forms) and report
   how far those runs are from float64: the spread "any correct float32 implementation" has;
3. run the float64 network `--kick-samples` times after one float32-rounding-sized relative
   perturbation (u 2^-24, u ~ U(-1, 1)) of the first activations only: how much the network
   itself amplifies a single rounding, independent of any arithmetic choice;
4. optionally (`--ours DIR`) report the distance of our own (Rust) outputs to float64 as well.

Per CBN layer it also reports (from the f64 run) how much the mean subtraction cancels,
rms(x)/rms(x - mean), and in train mode std/|mean| per channel, and for `--trace-case` the
deviation of the float32 runs after conv_in, every block, norm_out and conv_out.

The inputs (149-channel maps, X~, true score, weights) are the golden float32 data, promoted
exactly to float64: only the arithmetic differs between the runs. sigma is the float32 ladder
value of crate/src/score/inputs.rs. Batch 1 throughout (as every golden case).

The network follows crate/src/score/network.rs (docs/score-model.md §4), the loss crate/src/score/loss.rs and
crate/src/score/embed.rs (§5). Relative errors are those of crate/tests/common: ||a - b|| / ||b|| with
b the float64 value (for a scalar: |a - b| / |b|).

    python3 tests/numerics/f64_reference.py [--samples 8] [--kick-samples 4] [--seed 0]
        [--stats-acc f32|f64] [--cases NAME ...] [--ours DIR]

About 3 minutes on 2 cores with the defaults (the three 126x126 cases dominate).

Needs NumPy only. Writes evaluation/numerics/f64_reference.json. The shared data is found at
$FOLDSPACE_SHARED, else ../shared beside the repository.

--ours DIR reads, where present: DIR/losses.json ({"<case>": loss, ...}),
DIR/<case>_pred_map.npy and DIR/<case>_pred_grad.npy (shaped like the golden files), and for the
level-4 embedding case DIR/conv_out.npy, DIR/encoder_feat.npy (channel-first, as golden).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EPS_BN = 1e-5  # BatchNorm2d eps
DILATIONS = (1, 3, 5, 9)  # cycled over the 32 blocks


# ---------------------------------------------------------------------------------------------
# Data


def shared_dir() -> Path:
    env = os.environ.get("FOLDSPACE_SHARED")
    for c in ([Path(env)] if env else []) + [REPO.parent / "shared"]:
        if (c / "reference/model_trgt_opt.safetensors").is_file():
            return c
    sys.exit("shared data missing: set FOLDSPACE_SHARED or put shared/ beside the repository")


def load_safetensors(path: Path) -> dict:
    """Parse safetensors by hand: u64 LE header length, JSON header, raw little-endian data."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    dtypes = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "F16": "<f2"}
    out = {}
    for key, v in header.items():
        if key == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = np.dtype(dtypes[v["dtype"]])
        arr = np.frombuffer(data, dtype=dt, count=(b - a) // dt.itemsize, offset=8 + n + a)
        out[key] = arr.reshape(v["shape"])
    return out


def noise_levels(sigma_max=10.0, sigma_min=0.01, n=61) -> np.ndarray:
    """crate/src/score/inputs.rs noise_levels: f32(2^(log2 max + k*step)), the last one exactly min."""
    start, stop = np.log2(sigma_max), np.log2(sigma_min)
    step = (stop - start) / (n - 1)
    e = [stop if k == n - 1 else start + step * k for k in range(n)]
    return np.array([2.0**x for x in e], dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Arithmetic: one network code path, run either in exact-enough float64 or in float32 with a
# randomised (but legitimate) order of every accumulation.


class Arith:
    """float64 with fixed order (rng None), or float32 with random accumulation orders."""

    def __init__(self, dtype, rng=None, stats_acc="f32", kick=None):
        self.dt = np.dtype(dtype)
        self.rng = rng
        self.stats_acc = stats_acc  # f32: batch statistics summed in f32; f64: as PyTorch's CPU
        # kick (an rng, f64 runs only): multiply the conv_in output by (1 + u 2^-24), u ~ U(-1, 1),
        # i.e. one float32 rounding of the first activations and exact arithmetic after it. How
        # far that moves the outputs is the network's own amplification of rounding errors.
        self.kick = kick

    def perturb(self, h):
        if self.kick is None:
            return h
        return h * (1 + self.kick.uniform(-1, 1, h.shape) * 2.0**-24)

    def cast(self, a):
        return np.asarray(a, dtype=self.dt)

    def _splits(self, n, most):
        """Random chunk boundaries of range(n): 1..most chunks."""
        k = int(self.rng.integers(1, min(most, n) + 1))
        cuts = np.sort(self.rng.choice(np.arange(1, n), size=k - 1, replace=False)) if k > 1 else []
        b = [0, *cuts, n]
        return list(zip(b[:-1], b[1:]))

    def conv(self, x, w, bias, dilation):
        """Conv2d stride 1, zero padding dilation*(k//2), via im2col + matmul. x: (C, H, W)."""
        cout, cin, k, _ = w.shape
        _, h, wd = x.shape
        p = dilation * (k // 2)
        xp = np.pad(x, ((0, 0), (p, p), (p, p)))
        cols = np.empty((cin, k * k, h * wd), dtype=self.dt)
        for i in range(k):
            for j in range(k):
                sl = xp[:, i * dilation : i * dilation + h, j * dilation : j * dilation + wd]
                cols[:, i * k + j] = sl.reshape(cin, h * wd)
        cols = cols.reshape(cin * k * k, h * wd)
        wm = self.cast(w).reshape(cout, cin * k * k)
        b = self.cast(bias)[:, None]
        if self.rng is None:
            return (wm @ cols + b).reshape(cout, h, wd)
        # Permute the reduction axis (input channel x tap) and split it into partial matmuls
        # (each an f32 sgemm with its own blocking), then add the partials and the bias in a
        # random order: every one of these is a valid float32 convolution.
        kk = cin * k * k
        perm = self.rng.permutation(kk)
        terms = [wm[:, perm[a:c]] @ cols[perm[a:c]] for a, c in self._splits(kk, 8)]
        terms.insert(int(self.rng.integers(len(terms) + 1)), np.broadcast_to(b, terms[0].shape))
        acc = terms[0]
        for t in terms[1:]:
            acc = acc + t
        return acc.reshape(cout, h, wd)

    def _sum_pixels(self, x2):
        """Sum of (C, N) over N. Random order: permuted pixels, random chunks (pairwise sums
        inside a chunk, as NumPy/SIMD do; sequential across chunks, as a block reduction)."""
        if self.rng is None or self.stats_acc == "f64":
            return x2.astype(np.float64).sum(axis=1)
        xs = x2[:, self.rng.permutation(x2.shape[1])]
        acc = None
        for a, c in self._splits(x2.shape[1], 64):
            part = xs[:, a:c].sum(axis=1)
            acc = part if acc is None else acc + part
        return acc

    def batch_stats(self, x):
        """Mean and biased variance over (H, W) (batch 1), two-pass."""
        c = x.shape[0]
        x2 = x.reshape(c, -1)
        n = x2.shape[1]
        mean = self.cast(self._sum_pixels(x2) / n)
        if self.stats_acc == "f64" and self.rng is not None:
            # PyTorch CPU: accumulate in f64 and round the statistics once to f32.
            d = x2.astype(np.float64) - x2.astype(np.float64).mean(axis=1, keepdims=True)
            return mean, self.cast((d * d).sum(axis=1) / n)
        d = x2 - mean[:, None]
        return mean, self.cast(self._sum_pixels(d * d) / n)

    def cbn(self, x, mean, var, gamma, beta):
        """Normalise, then per-level scale and shift. In f32 pick one of three equal forms."""
        mean, var, gamma, beta = (self.cast(v)[:, None, None] for v in (mean, var, gamma, beta))
        alpha = 1 / np.sqrt(var + self.dt.type(EPS_BN))
        form = 0 if self.rng is None else int(self.rng.integers(3))
        if form == 0:  # textbook (x - mean) / sqrt(var + eps)
            return (x - mean) * alpha * gamma + beta
        if form == 1:  # PyTorch CPU kernel / model.rs: x*alpha + (-mean*alpha)
            return (x * alpha + (-mean * alpha)) * gamma + beta
        scale = alpha * gamma  # folded into one multiply-add (inference engines)
        return x * scale + (beta - mean * scale)

    def elu(self, x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    def matmul_perm(self, a, b):
        """a @ b with the inner axis permuted (loss stage)."""
        if self.rng is None:
            return a @ b
        p = self.rng.permutation(a.shape[1])
        return a[:, p] @ b[p]


# ---------------------------------------------------------------------------------------------
# Network and loss


def cbn_params(wts, prefix, level):
    return (
        wts[f"{prefix}.norm.running_mean"],
        wts[f"{prefix}.norm.running_var"],
        wts[f"{prefix}.embed_gamma.weight"][level],
        wts[f"{prefix}.embed_beta.weight"][level],
    )


def cond_bn(ar, wts, prefix, x, level, mode, cond):
    """CondBatchNorm (model.rs): running stats (eval) or batch stats (train), then gamma/beta.
    `cond` (f64 run only) collects how much the mean subtraction cancels, per channel."""
    rm, rv, gamma, beta = cbn_params(wts, prefix, level)
    if mode == "train":
        mean, var = ar.batch_stats(x)
    else:
        mean, var = rm, rv
    if cond is not None:
        x2 = x.reshape(x.shape[0], -1)
        m = np.asarray(mean, np.float64)[:, None]
        # Cancellation factor rms(x)/rms(x - m): the digits of x lost when m is subtracted.
        factor = np.sqrt((x2**2).mean(1) / np.maximum(((x2 - m) ** 2).mean(1), 1e-300))
        entry = {"layer": prefix, "cancel": factor}
        if mode == "train":
            entry["std_over_absmean"] = np.sqrt(var) / np.maximum(np.abs(mean), 1e-300)
        cond.append(entry)
    return ar.cbn(x, mean, var, gamma, beta)


def forward(ar, wts, inputs, level, mode, trace=None, cond=None):
    """Score network (model.rs ScoreNet::forward) on one (149, H, W) map.
    Returns (score (H, W), features (64, H, W)); `trace` collects the residual stream."""
    h = ar.perturb(ar.conv(ar.cast(inputs), wts["conv_in.weight"], wts["conv_in.bias"], 1))
    if trace is not None:
        trace.append(("conv_in", h))
    for b in range(32):
        p = f"blocks_hid.{b}"
        t = h
        for i, (k, dil) in enumerate(((1, 1), (3, DILATIONS[b % 4]), (1, 1)), start=1):
            t = ar.elu(cond_bn(ar, wts, f"{p}.norm{i}", t, level, mode, cond))
            t = ar.conv(t, wts[f"{p}.conv{i}.weight"], wts[f"{p}.conv{i}.bias"], dil)
        h = h + t
        if trace is not None:
            trace.append((f"block{b:02d}", h))
    feats = ar.elu(cond_bn(ar, wts, "norm_out", h, level, mode, cond))
    score = ar.conv(feats, wts["conv_out.weight"], wts["conv_out.bias"], 1)[0]
    if trace is not None:
        trace.append(("norm_out (encoder_feat)", feats))
        trace.append(("conv_out (score map)", score))
    return score, feats


def recover(ar, g, xp, xs):
    """embed.rs recover_gradients: gp = 2(rowsum(G) xp - G xs), gs = 2(colsum(G) xs - G^T xp)."""
    gp = 2 * (g.sum(axis=1)[:, None] * xp - ar.matmul_perm(g, xs))
    gs = 2 * (g.sum(axis=0)[:, None] * xs - ar.matmul_perm(np.ascontiguousarray(g.T), xp))
    return gp, gs


def dsm(ar, score, x_tilde, truth, mask, r0, c0, n, sigma):
    """loss.rs dsm_loss (B = 1): returns (loss, predicted gradient [(2n), 3])."""
    xt, m = ar.cast(x_tilde), ar.cast(mask)
    xp, xs, mp, ms = xt[r0 : r0 + n], xt[c0 : c0 + n], m[r0 : r0 + n], m[c0 : c0 + n]
    g = score * mp[:, None] * ms[None, :]
    gp, gs = recover(ar, g, xp, xs)
    s = ar.dt.type(sigma)
    pred = np.concatenate([gp, gs]) / s
    diff = (pred - ar.cast(truth)) * s
    loss = ((diff**2).sum(axis=1) * np.concatenate([mp, ms])).mean()
    return float(loss), pred


def rel(a, b):
    """crate/tests/common rel_err: ||a - b|| / ||b|| in f64 (b the reference)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.sqrt(((a - b) ** 2).sum() / max((b**2).sum(), 1e-300)))


# ---------------------------------------------------------------------------------------------
# Cases


def load_cases(shared: Path):
    """The four golden loss cases and the level-4 embedding case, with golden results."""
    gl, ge = shared / "reference/golden/loss_A0A023PZB3", shared / "reference/golden/A0A023PZB3"
    meta = json.loads((gl / "meta.json").read_text())
    common = {k: np.load(gl / f"{k}.npy") for k in ("X", "X_tilde", "mask")}
    cases = []
    for name, c in meta["examples"].items():
        cases.append(
            {
                "name": name,
                "kind": "loss",
                "mode": c["bn_mode"],
                "level": meta["noise_idx"],
                "sigma_meta": meta["noise_std"],
                "r0": c["row_beg"],
                "c0": c["col_beg"],
                "n": c["crop"],
                "inputs": np.load(gl / f"{name}_inputs.npy"),
                "golden": {
                    "loss": c["loss_f32"],
                    "map": np.load(gl / f"{name}_pred_map.npy")[0],
                    "grad": np.load(gl / f"{name}_pred_grad.npy"),
                },
                "truth": np.load(gl / f"{name}_true_grad.npy"),
                **common,
            }
        )
    em = json.loads((ge / "meta.json").read_text())
    cases.append(
        {
            "name": f"embed_level{em['noise_idx']}_eval",
            "kind": "embed",
            "mode": "eval",
            "level": em["noise_idx"],
            "sigma_meta": em["noise_std"],
            "n": em["L"],
            "inputs": np.load(ge / "inputs.npy"),
            "golden": {
                "map": np.load(ge / "conv_out.npy")[0],
                "feat": np.load(ge / "encoder_feat.npy"),
                "residue": np.load(ge / "residue_level_feat.npy"),
                "protein": np.load(ge / "protein_level_feat.npy"),
            },
        }
    )
    return cases


def run_case(ar, wts, case, sigma, trace=None, cond=None):
    """All outputs of one case under one arithmetic."""
    score, feats = forward(ar, wts, case["inputs"], case["level"], case["mode"], trace, cond)
    out = {"map": score}
    if case["kind"] == "loss":
        out["loss"], out["grad"] = dsm(
            ar, score, case["X_tilde"], case["truth"], case["mask"],
            case["r0"], case["c0"], case["n"], sigma,
        )
    else:
        out["feat"] = feats
        out["residue"] = feats.mean(axis=2)
        out["protein"] = feats.mean(axis=(1, 2))
    return out


def compare(out, ref):
    """Relative error of every output of `out` against the f64 `ref` (loss signed and abs)."""
    r = {}
    for k, v in out.items():
        if k not in ref:
            continue
        if k == "loss":
            r["loss_signed"] = (v - ref["loss"]) / abs(ref["loss"])
            r["loss"] = abs(r["loss_signed"])
        else:
            r[k] = rel(v, ref[k])
    return r


def summary(values):
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "max": float(np.abs(v).max()), "values": [float(x) for x in v]}


def load_ours(d: Path, case):
    """Our outputs for a case from --ours DIR, where present."""
    out = {}
    losses = d / "losses.json"
    if case["kind"] == "loss":
        if losses.is_file():
            lj = json.loads(losses.read_text())
            if case["name"] in lj:
                out["loss"] = float(lj[case["name"]])
        for k, f in (("map", "pred_map"), ("grad", "pred_grad")):
            p = d / f"{case['name']}_{f}.npy"
            if p.is_file():
                a = np.load(p)
                out[k] = a.reshape(case["golden"][k].shape)
    else:
        for k, f in (("map", "conv_out"), ("feat", "encoder_feat")):
            p = d / f"{f}.npy"
            if p.is_file():
                out[k] = np.load(p).reshape(case["golden"][k].shape)
    return out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=8, help="randomised float32 runs per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kick-samples", type=int, default=4,
                    help="f64 runs with one f32-rounding-sized perturbation after conv_in")
    ap.add_argument("--stats-acc", choices=("f32", "f64"), default="f32",
                    help="accumulation of batch statistics in the f32 runs (f64: as PyTorch CPU)")
    ap.add_argument("--ours", type=Path, help="directory with our outputs (see the docstring)")
    ap.add_argument("--trace-case", default="crop32_r10_c70_train",
                    help="case whose per-layer deviation is printed")
    ap.add_argument("--cases", nargs="*", help="only these cases (default: all five)")
    ap.add_argument("--out", type=Path, default=REPO / "evaluation/numerics/f64_reference.json")
    args = ap.parse_args()
    t_start = time.time()

    shared = shared_dir()
    wts = load_safetensors(shared / "reference/model_trgt_opt.safetensors")
    sigmas = noise_levels()
    cases = [c for c in load_cases(shared) if not args.cases or c["name"] in args.cases]
    rng = np.random.default_rng(args.seed)
    exact = Arith(np.float64)
    result = {
        "command": "python3 tests/numerics/f64_reference.py " + " ".join(sys.argv[1:]),
        "samples": args.samples, "kick_samples": args.kick_samples, "seed": args.seed,
        "stats_acc": args.stats_acc,
        "rel_err": "||a - b|| / ||b||, b = float64 (scalars: |a - b| / |b|)",
        "cases": {},
    }

    for case in cases:
        t0 = time.time()
        sigma = float(sigmas[case["level"]])  # the f32 sigma, exactly
        assert np.float32(sigma) == np.float32(case["sigma_meta"]), "noise ladder differs"
        res = {"kind": case["kind"], "mode": case["mode"], "level": case["level"],
               "sigma": sigma, "size": case["n"]}
        if case["kind"] == "loss":
            # Check the stored true score against (X - X~)/sigma^2 in f64 (it enters as data).
            n, r0, c0 = case["n"], case["r0"], case["c0"]
            x, xt = case["X"].astype(np.float64), case["X_tilde"].astype(np.float64)
            t64 = (x - xt) / sigma**2
            res["golden_truth_vs_f64"] = rel(case["truth"],
                                             np.concatenate([t64[r0:r0 + n], t64[c0:c0 + n]]))

        trace64, cond = [], []
        ref = run_case(exact, wts, case, sigma, trace64, cond)
        if case["kind"] == "loss":
            res["f64_loss"] = ref["loss"]
            res["golden_loss_f32"] = case["golden"]["loss"]
        res["golden"] = compare(case["golden"], ref)

        # Conditioning of each CBN (from the f64 run): worst channel per layer.
        res["conditioning"] = [
            {"layer": e["layer"], "max_cancel": float(e["cancel"].max()),
             **({"min_std_over_absmean": float(e["std_over_absmean"].min())}
                if "std_over_absmean" in e else {})}
            for e in cond
        ]
        last = cond[-1]  # norm_out: per channel
        res["norm_out_channels"] = {
            "cancel": [float(v) for v in last["cancel"]],
            **({"std_over_absmean": [float(v) for v in last["std_over_absmean"]]}
               if "std_over_absmean" in last else {}),
        }

        # Randomised float32 runs.
        per_sample, layer_rel = [], []
        for _ in range(args.samples):
            ar = Arith(np.float32, np.random.default_rng(rng.integers(2**63)), args.stats_acc)
            tr = []
            out = run_case(ar, wts, case, sigma, tr)
            per_sample.append(compare(out, ref))
            layer_rel.append([rel(a, b) for (_, a), (_, b) in zip(tr, trace64)])
        keys = per_sample[0].keys() if per_sample else []
        res["f32_samples"] = {k: summary([s[k] for s in per_sample]) for k in keys}
        if per_sample and case["kind"] == "loss":
            ls = np.array([s["loss_signed"] for s in per_sample])
            res["f32_samples"]["loss_spread"] = float(ls.max() - ls.min())
        # Exact arithmetic after one rounding-sized kick of the first activations.
        kicked = [compare(run_case(Arith(np.float64, kick=np.random.default_rng(rng.integers(2**63))),
                                   wts, case, sigma), ref) for _ in range(args.kick_samples)]
        if kicked:
            res["f64_kicked"] = {k: summary([s[k] for s in kicked]) for k in kicked[0]}
        lr = np.array(layer_rel) if layer_rel else np.zeros((0, len(trace64)))
        res["layers"] = {
            "names": [nm for nm, _ in trace64],
            "f32_rel_mean": [float(v) for v in lr.mean(0)] if len(lr) else [],
            "f32_rel_max": [float(v) for v in lr.max(0)] if len(lr) else [],
        }
        if args.ours:
            ours = load_ours(args.ours, case)
            res["ours"] = compare(ours, ref) if ours else "no files"
        res["seconds"] = round(time.time() - t0, 1)
        result["cases"][case["name"]] = res
        print(f"{case['name']}: done in {res['seconds']} s", file=sys.stderr, flush=True)

    result["seconds"] = round(time.time() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report(result, args)


def fmt(x):
    return f"{x:.2e}" if isinstance(x, float) else str(x)


def report(result, args):
    print(f"\nfloat64 reference vs float32 (rel. error ||a-b||/||b||; {result['samples']} "
          f"randomised f32 runs, batch stats accumulated in {result['stats_acc']})\n")
    for name, r in result["cases"].items():
        print(f"== {name} ({r['mode']}, {r['size']}x{r['size']}, level {r['level']})")
        if "f64_loss" in r:
            print(f"   f64 loss {r['f64_loss']:.9f}   golden f32 loss {r['golden_loss_f32']:.9f}"
                  f"   golden true score vs f64 {fmt(r['golden_truth_vs_f64'])}")
        s = r["f32_samples"]
        rows = [("golden", r["golden"])] + ([("ours", r["ours"])] if "ours" in r else [])
        keys = [k for k in ("loss_signed", "loss", "map", "grad", "feat", "residue", "protein")
                if k in r["golden"]]
        print("   " + f"{'':22}" + "".join(f"{k:>12}" for k in keys))
        for label, d in rows:
            cells = (fmt(d[k]) if isinstance(d, dict) and k in d else "-" for k in keys)
            print("   " + f"{label:22}" + "".join(f"{c:>12}" for c in cells))
        for stat in ("mean", "std", "max"):
            label = f"f32 runs {stat}"
            cells = (fmt(s[k][stat]) if k in s else "-" for k in keys)
            print("   " + f"{label:22}" + "".join(f"{c:>12}" for c in cells))
        if "f64_kicked" in r:
            kk = r["f64_kicked"]
            label = "f64 + 1 rounding, max"
            cells = (fmt(kk[k]["max"]) if k in kk else "-" for k in keys)
            print("   " + f"{label:22}" + "".join(f"{c:>12}" for c in cells))
        if "loss_spread" in s:
            print(f"   f32 runs loss spread (max - min) / f64: {s['loss_spread']:.2e}")
        worst = max(r["conditioning"], key=lambda e: e["max_cancel"])
        print(f"   worst CBN cancellation rms(x)/rms(x-mean): {worst['max_cancel']:.3g} "
              f"({worst['layer']}); norm_out worst {r['conditioning'][-1]['max_cancel']:.3g}")
        print()
    tc = result["cases"].get(args.trace_case)
    if tc and tc["layers"]["f32_rel_mean"]:
        print(f"Per-layer deviation of the f32 runs from f64, {args.trace_case} "
              f"(mean / max over runs) and the worst channel's conditioning of the CBNs feeding it:")
        conds = {e["layer"]: e for e in tc["conditioning"]}
        for i, nm in enumerate(tc["layers"]["names"]):
            extra = ""
            if nm.startswith("block"):
                b = int(nm[5:])
                es = [conds[f"blocks_hid.{b}.norm{k}"] for k in (1, 2, 3)]
                extra = "  cancel " + " ".join(f"{e['max_cancel']:7.3g}" for e in es)
                if "min_std_over_absmean" in es[0]:
                    extra += "  min std/|mean| " + " ".join(
                        f"{e['min_std_over_absmean']:8.2e}" for e in es)
            elif nm.startswith("norm_out"):
                e = conds["norm_out"]
                extra = f"  cancel {e['max_cancel']:7.3g}"
                if "min_std_over_absmean" in e:
                    extra += f"  min std/|mean| {e['min_std_over_absmean']:8.2e}"
            print(f"   {nm:26} {tc['layers']['f32_rel_mean'][i]:.2e} / "
                  f"{tc['layers']['f32_rel_max'][i]:.2e}{extra}")
        ch = tc["norm_out_channels"]
        if "std_over_absmean" in ch:
            v = np.array(ch["std_over_absmean"])
            order = np.argsort(v)
            print("   norm_out input, std/|mean| per channel (batch stats), smallest 8: "
                  + ", ".join(f"ch{j} {v[j]:.2e}" for j in order[:8]))
            print(f"   quartiles: {np.quantile(v, [0, .25, .5, .75, 1]).round(4).tolist()}")
    print(f"\nwrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
