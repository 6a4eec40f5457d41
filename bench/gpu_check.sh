#!/usr/bin/env bash
# The GPU check in one go, for a machine with a CUDA GPU and no network, from a checkout (run from
# anywhere; it cds to the repository root):
#
#   bash bench/gpu_check.sh [PEAK_BF16_TFLOPS]   # dense bf16 peak: H100 SXM 989, H200 989, A100 312
#   bash bench/gpu_check.sh --smoke              # the same steps on the CPU at tiny sizes (a test runs it)
#
# 0. Packages: the GPU image has torch, lightning, torchmetrics, timm, OpenCV, scipy and scikit-image
#    but not hydra-core, omegaconf, antlr4, albumentations (+ its needs) or pymatting. Missing ones are
#    installed from the wheels in bench/wheels/ (fetch them beforehand: bash bench/fetch_wheels.sh,
#    ~8 MB, listed in bench/wheels.txt) into a private folder put on PYTHONPATH; with nothing
#    missing, nothing is installed. The repository itself is used from PYTHONPATH (no pip install).
# 1. Training step on device tensors: ResNet-34 and ViTAE-S, batch 8 at 512x512: strict fp32 eager
#    (TF32 off) against TF32, bf16 + channels-last and bf16 + channels-last + torch.compile
#    (images/s, TFLOP/s, fraction of the peak, peak memory).
# 2. Peak memory of every backbone with and without activation checkpointing.
# 3. The real training loop (bench/bench_loader.py): Trainer.fit with the real DataLoader and workers
#    over 256 packed synthetic portraits of 1080x1440 (generated in parallel, then packed), ResNet-34,
#    batch 8, bf16 + channels-last: images/s with the loader against one device-resident batch, the
#    share of time waiting for data, and HYBRID evaluation images/s (resize_mode=paper).
# Results: bench/results/gpu_{train_step,memory,loader}.json (or under $P3M_RESULTS). About 5 min.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
results="${P3M_RESULTS:-bench/results}"
wheels="${P3M_WHEELS:-bench/wheels}"
smoke=false
peak=989
case "${1:-}" in
    --smoke) smoke=true ;;
    "") ;;
    *) peak="$1" ;;
esac
mkdir -p "$results"

missing=$("$python" - <<'PY'
import importlib.util
modules = {"hydra": "hydra-core", "omegaconf": "omegaconf", "antlr4": "antlr4-python3-runtime",
           "albumentations": "albumentations", "pymatting": "pymatting"}
print(" ".join(package for module, package in modules.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
    if ! compgen -G "$wheels/*.whl" >/dev/null; then
        echo "missing Python packages: $missing, and no wheels in $wheels: run 'bash bench/fetch_wheels.sh'" \
            "on a machine with network and bring bench/wheels/ along" >&2
        exit 1
    fi
    site="${P3M_SITE:-${TMPDIR:-/tmp}/p3m_gpu_check_site}"
    echo "installing $missing (and their needs) from $wheels into $site"
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if $smoke; then
    "$python" bench/bench_train_step.py --device cpu --batch 1 --size 64 --backbones smoke \
        --warmup 0 --runs 1 --variants bf16-cl --out "$results/gpu_train_step.json"
    "$python" bench/bench_loader.py --device cpu --num-train 4 --size 80 96 --batch 2 --train-size 32 \
        --crop-sizes 32 48 --workers 1 --warmup 1 --steps 1 --eval-images 2 --precision bf16 \
        --data-dir "$results/loader_data" --out "$results/gpu_loader.json"
    exit 0
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$python" bench/bench_train_step.py --device cuda --batch 8 --size 512 --backbones resnet34 vitae \
    --warmup 2 --runs 5 --variants fp32-tf32 bf16-cl bf16-cl-compile --peak-tflops "$peak" \
    --out "$results/gpu_train_step.json"
"$python" bench/bench_memory.py --device cuda --batch 8 --size 512 --precision fp32 bf16 \
    --out "$results/gpu_memory.json"
"$python" bench/bench_loader.py --device cuda --num-train 256 --size 1080 1440 --batch 8 \
    --warmup 10 --steps 60 --eval-images 8 --data-dir "${TMPDIR:-/tmp}/p3m_gpu_check_data" \
    --out "$results/gpu_loader.json"
