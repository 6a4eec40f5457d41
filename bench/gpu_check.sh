#!/usr/bin/env bash
# The GPU check of issue 7 in one go, for a machine with a CUDA GPU (run from the repo root, in an
# environment with the project installed: `pip install -e .`):
#
#   bash bench/gpu_check.sh [PEAK_BF16_TFLOPS]   # dense bf16 peak: H100 SXM 989, H200 989, A100 312
#
# ResNet-34 and ViTAE-S, batch 8 at 512x512: strict fp32 eager (TF32 off) against TF32, bf16 +
# channels-last and bf16 + channels-last + torch.compile (images/s, TFLOP/s, fraction of the peak,
# peak memory), then the peak memory of every backbone with and without activation checkpointing.
# Results: bench/results/gpu_train_step.json and bench/results/gpu_memory.json.
set -euo pipefail
peak="${1:-989}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python bench/bench_train_step.py --device cuda --batch 8 --size 512 --backbones resnet34 vitae \
    --warmup 2 --runs 5 --variants fp32-tf32 bf16-cl bf16-cl-compile --peak-tflops "$peak" \
    --out bench/results/gpu_train_step.json
python bench/bench_memory.py --device cuda --batch 8 --size 512 --precision fp32 bf16 \
    --out bench/results/gpu_memory.json
