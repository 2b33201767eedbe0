#!/usr/bin/env python3
"""Side-by-side timing of block stiffness analysis: PyTorch vs resnet-stiffness.

The PyTorch pipeline is what a researcher writes: for every block, the
flattened float64 Jacobian by `torch.func.jacrev` at the block's input, then
`torch.linalg.eigvals`; once for the whole block B and once for its branch F.
The tool runs one `analyze --input-npy` process on the same input tensor,
same blocks and Jacobian kinds (`--kinds`, both by default), exact spectrum.
The tool analyses blocks side by side, so its per-record seconds overlap
and only its whole-process time compares with PyTorch's sum. Both use 2
threads; run it on an otherwise idle machine. The script prints one
Markdown table (per block and in total) and checks that the two agree on
max Re and the spectral radius (relative difference in the last column).

Benchmark only: PyTorch is never a dependency of the tool or its tests.

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install torch torchvision safetensors numpy
    cargo build --release
    /tmp/bench-venv/bin/python scripts/bench_vs_pytorch.py \
        --model models/cifar10-resnet18/model.safetensors --arch resnet18 --blocks square

Models: torchvision ResNets (`--arch resnet18|resnet34|resnet50`,
safetensors or .pt state dicts) and the CIFAR ResNets 6n+2 of akamaster
(`--arch resnet20|resnet56`, legacy .th). The input is one CIFAR-10 test
JPEG (`--image`), pixel values / 255 unless `--normalize imagenet`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


class LambdaShortcut(nn.Module):
    """akamaster option A: subsample by 2, zero-pad planes/4 channels each side."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class CifarBasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != planes:
            self.shortcut = LambdaShortcut(planes // 4)

    def forward(self, x):
        return F.relu(self.residual(x) + self.shortcut(x))

    def residual(self, x):
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))


class CifarResNet(nn.Module):
    def __init__(self, n, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin, layers = 16, []
        for stage, planes in enumerate([16, 32, 64]):
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(CifarBasicBlock(cin, planes, stride))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, classes)


def torchvision_residual(block):
    """F of a torchvision BasicBlock or Bottleneck: the output before the
    shortcut is added and before the final ReLU."""

    def f(x):
        out = F.relu(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(out))
        if hasattr(block, "conv3"):
            out = block.bn3(block.conv3(F.relu(out)))
        return out

    return f


def load_model(path, arch):
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu")
        state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v.float() for k, v in state.items()}
    if arch in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"):
        model = CifarResNet((int(arch[6:]) - 2) // 6)
        residual = lambda b: b.residual  # noqa: E731
    else:
        import torchvision

        model = getattr(torchvision.models, arch)(num_classes=10)
        residual = torchvision_residual
    model.load_state_dict(state, strict=False)
    return model.eval(), residual


def named_blocks(model):
    return [
        (f"{stage}.{i}", block)
        for stage in ("layer1", "layer2", "layer3", "layer4")
        if hasattr(model, stage)
        for i, block in enumerate(getattr(model, stage))
    ]


def block_inputs(model, x):
    """Every block's input in one forward pass (float32), by hooks."""
    inputs = {}
    hooks = [
        block.register_forward_pre_hook(lambda m, a, name=name: inputs.__setitem__(name, a[0]))
        for name, block in named_blocks(model)
    ]
    with torch.no_grad():
        model(x) if hasattr(model, "fc") else cifar_forward(model, x)
    for h in hooks:
        h.remove()
    return inputs


def cifar_forward(model, x):
    h = F.relu(model.bn1(model.conv1(x)))
    for layer in (model.layer1, model.layer2, model.layer3):
        h = layer(h)
    return model.linear(h.mean((2, 3)))


def metrics(eig):
    re = eig.real
    return {"max_re": float(re.max()), "rho": float(eig.abs().max())}


def pytorch_block(fn, x):
    """jacrev of the flattened map at float64(x), then eigvals; seconds."""
    start = time.perf_counter()
    shape = x.shape
    flat = lambda v: fn(v.view(shape)).flatten()  # noqa: E731
    jac = torch.func.jacrev(flat)(x.flatten())
    eig = torch.linalg.eigvals(jac)
    return time.perf_counter() - start, metrics(eig)


def run_pytorch(model, residual, inputs, names, kinds):
    model.double()
    out = {}
    for name, block in named_blocks(model):
        if name not in names:
            continue
        x = inputs[name].double()
        with torch.no_grad():
            for kind, fn in (("block", block), ("residual", residual(block))):
                if kind in kinds:
                    out[(name, kind)] = pytorch_block(fn, x)
                    print(f"PyTorch {name} {kind}: {out[(name, kind)][0]:.1f} s", file=sys.stderr)
    return out


def run_tool(tool, model_path, image_npy, names, kinds):
    out_dir = tempfile.mkdtemp(prefix="bench-vs-pytorch-")
    cmd = [
        tool, "analyze", "--model", model_path, "--input-npy", image_npy,
        "--blocks", ",".join(names), "--jacobian", ",".join(kinds),
        "--spectrum", "exact", "--threads", "2", "--out", out_dir,
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    records = {}
    with open(os.path.join(out_dir, "records.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            records[(r["block"], r["kind"])] = r
    return wall, records


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tool", default="target/release/resnet-stiffness")
    p.add_argument("--model", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--blocks", default="square", help="square, or NAME,NAME,...")
    p.add_argument("--image", default="../shared/data/cifar10-jpg/test/cat/0000.jpg")
    p.add_argument("--normalize", choices=["none", "imagenet"], default="none")
    p.add_argument("--kinds", default="block,residual", help="block, residual or both")
    a = p.parse_args()
    torch.set_num_threads(2)

    pixels = np.asarray(Image.open(a.image).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()
    if a.normalize == "imagenet":
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
        x = (x - mean) / std
    image_npy = os.path.join(tempfile.mkdtemp(prefix="bench-input-"), "input.npy")
    np.save(image_npy, x.numpy())

    model, residual = load_model(a.model, a.arch)
    inputs = block_inputs(model, x)
    if a.blocks == "square":
        names = [n for n, b in named_blocks(model) if inputs[n].shape == b(inputs[n]).shape]
    else:
        names = a.blocks.split(",")

    torch_start = time.perf_counter()
    kinds = a.kinds.split(",")
    theirs = run_pytorch(model, residual, inputs, names, kinds)
    torch_wall = time.perf_counter() - torch_start
    tool_wall, ours = run_tool(a.tool, a.model, image_npy, names, kinds)

    print(f"model {a.model} ({a.arch}), image {a.image}, blocks {','.join(names)}")
    print("| block | kind | n | PyTorch s | resnet-stiffness s (record) | ratio | max rel diff (max_re, rho) |")
    print("|---|---|---|---|---|---|---|")
    for (name, kind), (secs, m) in theirs.items():
        r = ours[(name, kind)]
        diff = max(
            abs(r["max_re"] - m["max_re"]) / max(abs(m["max_re"]), 1e-300),
            abs(r["spectral_radius"] - m["rho"]) / m["rho"],
        )
        print(
            f"| {name} | {kind} | {r['n']} | {secs:.2f} | {r['seconds']:.2f} | "
            f"{secs / r['seconds']:.1f}x | {diff:.1e} |"
        )
    print(
        f"| all | {a.kinds} | | {torch_wall:.1f} | {tool_wall:.1f} (whole process) | "
        f"{torch_wall / tool_wall:.1f}x | |"
    )


if __name__ == "__main__":
    sys.exit(main())
