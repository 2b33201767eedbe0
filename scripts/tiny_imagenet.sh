#!/usr/bin/env bash
# Issue 15, step by step: train ResNet18 on Tiny-ImageNet (200 classes),
# export it as float16, analyse 5 validation images per class and report.
# Every step resumes where it stopped (train --resume, analyze --resume),
# so run the same step again after an interruption.
#
#   scripts/tiny_imagenet.sh train|export|analyze|report [extra flags]
#
# DATA: the tiny-imagenet-200 folder (outside the repository; see issue 15
# for where it comes from). RUN: the training run's folder (45 MB per
# checkpoint, outside the repository). BIN: the resnet-stiffness binary.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../data/tiny-imagenet-200}
RUN=${RUN:-../runs/tiny-resnet18}
BIN=${BIN:-target/release/resnet-stiffness}
MODEL=models/tiny-imagenet-resnet18
EXAMPLE=examples/tiny-imagenet-resnet18
step=${1:?usage: $0 train|export|analyze|report [extra flags]}
shift

case "$step" in
train)
    # EPOCHS (default 2) of a cosine schedule, about 40 minutes per epoch on
    # 2 idle cores: 2 epochs and the analysis start fit one session. A later
    # `EPOCHS=N scripts/tiny_imagenet.sh train` continues the same run
    # with the cosine schedule recomputed for N epochs.
    exec nice -n 19 "$BIN" train --arch resnet18 --data "$DATA" --classes 200 \
        --out "$RUN" --epochs "${EPOCHS:-2}" --batch-size 128 --lr 0.1 --schedule cosine \
        --warmup-epochs 0 --weight-decay 0.0005 --nesterov --augment crop-flip \
        --seed 0 --save-minutes 10 --resume "$@"
    ;;
export)
    exec "$BIN" export --run "$RUN" --out "$MODEL" "$@"
    ;;
analyze)
    # 1,000 validation images (5 per class), the last block of stage 3 and
    # both blocks of stage 4, both kinds, exact and paper-compatible
    # spectra: about 14-15 s per image on 2 idle cores (about 4 h). The
    # records live in the repository and are committed as they grow, so
    # a later session, on any machine with the data, resumes them.
    exec "$BIN" analyze --model "$MODEL/model.safetensors" --arch resnet18 \
        --data "$DATA" --classes 200 --per-class 5 --seed 0 \
        --blocks layer3.1,layer4.0,layer4.1 --jacobian block,residual \
        --spectrum both --out "$EXAMPLE/records" --resume "$@"
    ;;
report)
    exec "$BIN" report --records "$EXAMPLE/records" --out "$EXAMPLE/report" "$@"
    ;;
*)
    echo "unknown step '$step': use train, export, analyze or report" >&2
    exit 2
    ;;
esac
