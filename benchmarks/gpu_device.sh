#!/usr/bin/env bash
# The GPU throughput check, prepared for one H100 (about 5 minutes, at most 8):
#
#   benchmarks/gpu_device.sh wheels   here: gcbench and the two packages the GPU machine's image
#                                     lacks (lion-pytorch, clean-fid) as wheels under .whl/
#   benchmarks/gpu_device.sh run      there (the `device` tool, carry .whl): installs them, runs
#                                     benchmarks/gpu_throughput.py in fp32 (the paper's), with
#                                     TF32 and with bf16 autocast; logs under $OUT (or results/)
#
# The machine has no internet, so the Inception is the random-weight stand-in unless the
# standard weights were put in its asset cache (see gpu_throughput.py).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  wheels)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
    rm -rf .whl && mkdir -p .whl
    python3 -m pip wheel --quiet --no-deps --wheel-dir .whl .
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest .whl \
      --python-version 3.12 --implementation py --platform any \
      lion-pytorch==0.2.5 clean-fid==0.1.35
    ls -la .whl
    ;;
  run)
    out="${OUT:-results/benchmarks/gpu}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
    nvidia-smi -L | tee "$out/device.txt"
    python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$out/device.txt"
    bench="python3 benchmarks/gpu_throughput.py --steps 40 --log-every 10 --rounds 2"
    $bench 2>&1 | tee "$out/fp32.txt"
    $bench --set tf32=true --eval-n 2048 2>&1 | tee "$out/tf32.txt"
    $bench --set bf16=true --eval-n 2048 2>&1 | tee "$out/bf16.txt"
    ;;
  *)
    echo "usage: $0 wheels|run" >&2
    exit 2
    ;;
esac
