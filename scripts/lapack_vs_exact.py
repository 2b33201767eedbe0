#!/usr/bin/env python3
"""Negative-real-part counts: a dense LAPACK solve of the full Jacobian vs the exact spectrum.

A trained Bottleneck's residual branch J_F = U V factors through its narrowest
active layer (rank m, METHOD.md section 5), so it has an (n - m)-fold zero
eigenvalue. `torch.linalg.eigvals` (LAPACK geev) on the full float64 n x n
Jacobian scatters that zero into a cloud of small eigenvalues, some with
Re < -tol, and the share of negative real parts it reports is inflated. The
tool's exact spectrum gives those zeros exactly. This script shows it on real
images: for each image it computes

- PyTorch: `torch.func.jacrev` of the branch at the block input (the
  paper's pipeline, flattened), then `torch.linalg.eigvals`, in three
  precisions: float32 end to end (PyTorch's default dtype), a float32
  Jacobian solved in float64, and float64 end to end;
- resnet-stiffness: `analyze --input-npy` on the same input tensor, exact
  spectrum, `--save-eigenvalues`;

and prints, per image, the counts of eigenvalues with Re < -tol
(tol = 1e-6 max(1, rho), the tool's), the modulus histogram of LAPACK's
eigenvalues, and the largest distance between the two spectra over the
eigenvalues with |lambda| > 1e-4 (matched nearest-first).

Benchmark only: PyTorch is never a dependency of the tool or its tests.

    /work/bench-venv/bin/python scripts/lapack_vs_exact.py \
        --model models/cifar10-resnet50/model.safetensors --arch resnet50 --block layer3.1
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

from bench_vs_pytorch import block_inputs, load_model, named_blocks

BINS = [0.0, 1e-10, 1e-8, 1e-6, 1e-4, np.inf]


def image_tensor(path):
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()


# (name, dtype of the Jacobian, dtype of the eigen-solve): PyTorch's default
# float32 end to end (cgeev on a float32 matrix), a float32 Jacobian solved in
# float64 (dgeev), and float64 end to end.
PRECISIONS = {
    "float32": (torch.float32, torch.float32),
    "float32-jacobian": (torch.float32, torch.float64),
    "float64": (torch.float64, torch.float64),
}


def lapack_spectrum(model, fn, x, precision):
    """Eigenvalues of the flattened Jacobian of fn at x by LAPACK geev, the
    Jacobian and the solve in the dtypes of `precision`."""
    jac_dtype, eig_dtype = PRECISIONS[precision]
    model.to(jac_dtype)
    shape = x.shape
    with torch.no_grad():
        jac = torch.func.jacrev(lambda v: fn(v.view(shape)).flatten())(x.to(jac_dtype).flatten())
    model.float()
    return torch.linalg.eigvals(jac.to(eig_dtype)).numpy().astype(np.complex128)


def tool_spectrum(tool, model, x, block, kind):
    work = tempfile.mkdtemp(prefix="lapack-vs-exact-")
    npy = os.path.join(work, "input.npy")
    np.save(npy, x.numpy())
    out = os.path.join(work, "out")
    cmd = [
        tool, "analyze", "--model", model, "--input-npy", npy, "--blocks", block,
        "--jacobian", kind, "--spectrum", "exact", "--solver", "dense",
        "--save-eigenvalues", "--threads", "2", "--out", out,
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "records.jsonl")) as f:
        record = json.loads(f.readline())
    return record, np.load(os.path.join(out, record["eigenvalues_file"]))


def neg_count(eig):
    tol = 1e-6 * max(1.0, float(np.abs(eig).max()))
    return int((eig.real < -tol).sum()), tol


def matched_distance(a, b, floor=1e-4):
    """Largest |a_i - b_j| over a nearest-first matching of the eigenvalues
    with modulus above `floor`; also the two counts."""
    a, b = a[np.abs(a) > floor], b[np.abs(b) > floor]
    free = np.ones(len(b), dtype=bool)
    worst = 0.0
    for z in a[np.argsort(-np.abs(a))]:
        d = np.where(free, np.abs(b - z), np.inf)
        j = int(np.argmin(d)) if free.any() else None
        if j is None:
            return np.inf, len(a), len(b)
        free[j] = False
        worst = max(worst, float(d[j]))
    return worst, len(a), len(b)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tool", default="target/release/resnet-stiffness")
    p.add_argument("--model", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--block", default="layer3.1")
    p.add_argument("--kind", choices=["residual", "block"], default="residual")
    p.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS))
    p.add_argument("--images", nargs="+", default=[
        f"../shared/data/cifar10-jpg/test/{c}/0000.jpg"
        for c in ("airplane", "cat", "dog", "ship", "truck")
    ])
    a = p.parse_args()
    torch.set_num_threads(2)
    model, residual = load_model(a.model, a.arch)
    block = dict(named_blocks(model))[a.block]
    print(f"model {a.model} ({a.arch}), block {a.block}, J_{'F' if a.kind == 'residual' else 'B'}")
    bins = " | ".join(f"|l| in [{lo:.0e}, {hi:.0e})" for lo, hi in zip(BINS, BINS[1:]))
    print(f"| image | n | exact zeros | Re < -tol: exact | LAPACK precision | Re < -tol: LAPACK "
          f"| LAPACK {bins} | max dist, |l| > 1e-4 (count exact / LAPACK) |")
    print("|" + "---|" * (7 + len(BINS) - 1))
    fn = residual(block) if a.kind == "residual" else block
    for path in a.images:
        x = image_tensor(path)
        xin = block_inputs(model, x)[a.block]
        record, exact = tool_spectrum(a.tool, a.model, x, a.block, a.kind)
        for precision in a.precisions:
            dense = lapack_spectrum(model, fn, xin, precision)
            hist = np.histogram(np.abs(dense), bins=BINS)[0]
            dist, na, nb = matched_distance(exact, dense)
            print(
                f"| {'/'.join(path.split('/')[-2:])} | {len(dense)} | {record['n_zero']} "
                f"| {neg_count(exact)[0]} | {precision} | {neg_count(dense)[0]} | "
                + " | ".join(str(h) for h in hist)
                + f" | {dist:.1e} ({na} / {nb}) |",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
