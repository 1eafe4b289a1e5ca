#!/usr/bin/env bash
# One prepared check of the CUDA engine on a lent GPU machine, within 8 minutes, everything
# written to OUTDIR (summary.txt first). Run from anywhere, with the repository's sources:
#
#     bash benchmarks/gpu_check.sh OUTDIR
#
# Steps, each under its own time limit (a hung step cannot eat the others' time):
#   env        GPU, driver, Python, CuPy, torch, NVRTC versions
#   prewarm    every kernel configuration compiled in parallel into the NVRTC disk cache
#   tests      tests/test_cuda_engine.py and tests/test_torch_cuda.py (GPU tests), GPU_TEST_DEADLINE
#              seconds per test, JUnit XML
#   memcheck   compute-sanitizer memcheck over benchmarks/gpu_sanitize.py (every strategy)
#   racecheck  compute-sanitizer racecheck (shared memory hazards), fewer shapes
#   synccheck  compute-sanitizer synccheck (barriers), fewer shapes
#   bench-*    benchmarks/gpu.py: softmax, log_softmax, cross_entropy vs torch and the copy (markdown
#              table in bench-OP.log, figures in bench-OP.json); sample vs torch's sort recipe
# The limits add up to 470 s: with start-up, under 8 minutes.
# GPU_CHECK_DRY_RUN=1 prints the steps without running them (tests/test_gpu_check.py).
# Exit status: 0 all steps passed, 1 a step failed (see summary.txt; env and prewarm only
# inform), 2 usage, 3 no GPU.
set -u -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: bash benchmarks/gpu_check.sh OUTDIR" >&2
    exit 2
fi
OUT=$1
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python}
DRY=${GPU_CHECK_DRY_RUN:-0}
export PYTHONPATH="$ROOT/src:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export SOFTMAXKIT_CACHE_DIR="$OUT/cache"
export GPU_TEST_DEADLINE=${GPU_TEST_DEADLINE:-120}
export GPU_TEST_DEADLINE_LOG="$OUT/tests-deadline.log"
FAILED=""
: > "$OUT/summary.txt"

log() { echo "[gpu_check $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/summary.txt"; }

# step NAME SECONDS COMMAND...: run COMMAND under a time limit, output in OUTDIR/NAME.log
step() {
    local name=$1 limit=$2
    shift 2
    log "$name (limit ${limit}s): $*"
    if [ "$DRY" = 1 ]; then
        return 0
    fi
    local start=$SECONDS
    timeout --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    log "$name: exit $rc after $((SECONDS - start))s$([ $rc = 124 ] && echo ' (time limit)')"
    # env and prewarm only inform: the tests compile whatever prewarm did not reach
    [ $rc = 0 ] || [ "$name" = env ] || [ "$name" = prewarm ] || FAILED="$FAILED $name"
    tail -n 3 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}

find_sanitizer() {
    command -v compute-sanitizer && return
    local c
    for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
             "$("$PY" -c 'import sys; print(sys.prefix)' 2>/dev/null)"/lib/python3*/site-packages/nvidia/*/bin/compute-sanitizer; do
        [ -x "$c" ] && { echo "$c"; return; }
    done
}

log "softmaxkit GPU check in $ROOT -> $OUT"
if [ "$DRY" != 1 ]; then
    devices=$("$PY" -c 'import cupy; print(cupy.cuda.runtime.getDeviceCount())' 2>"$OUT/env.log")
    if [ -z "$devices" ] || [ "$devices" = 0 ]; then
        log "no CUDA device (or no CuPy): nothing to check. $(tail -n 1 "$OUT/env.log")"
        exit 3
    fi
fi

step env 20 bash -c "nvidia-smi; $PY -c 'import sys, numpy, cupy; print(sys.version); print(\"numpy\", numpy.__version__, \"cupy\", cupy.__version__); from cupy_backends.cuda.libs import nvrtc; print(\"nvrtc\", nvrtc.getVersion()); d = cupy.cuda.Device(); print(\"device\", d.id, d.compute_capability, cupy.cuda.runtime.getDeviceProperties(d.id)[\"name\"])'; $PY -c 'import torch; print(\"torch\", torch.__version__, torch.version.cuda, torch.cuda.is_available())'"
step prewarm 45 "$PY" benchmarks/gpu_prewarm.py
step tests 200 "$PY" -m pytest -p gpu_deadline -p no:cacheprovider -q -rfEs tests/test_cuda_engine.py \
    tests/test_torch_cuda.py --junitxml="$OUT/tests.xml"
SANITIZER=$(find_sanitizer)
if [ -n "$SANITIZER" ] || [ "$DRY" = 1 ]; then
    SANITIZER=${SANITIZER:-compute-sanitizer}
    step memcheck 50 "$SANITIZER" --tool memcheck --error-exitcode 9 --log-file "$OUT/memcheck.txt" \
        "$PY" benchmarks/gpu_sanitize.py
    step racecheck 40 "$SANITIZER" --tool racecheck --error-exitcode 9 --log-file "$OUT/racecheck.txt" \
        "$PY" benchmarks/gpu_sanitize.py --quick
    step synccheck 25 "$SANITIZER" --tool synccheck --error-exitcode 9 --log-file "$OUT/synccheck.txt" \
        "$PY" benchmarks/gpu_sanitize.py --quick
else
    log "compute-sanitizer not found (PATH, /usr/local/cuda*, nvidia wheels): sanitizer steps skipped"
    FAILED="$FAILED sanitizer-missing"
fi
for op in softmax log_softmax cross_entropy; do  # one step each: a time limit keeps the others' figures
    step "bench-$op" 25 "$PY" benchmarks/gpu.py --op "$op" --repeat 7 --warmup 2 --json "$OUT/bench-$op.json"
done
# Issue 17's sampling case (32 x 128,256, T 0.7, top-k 50, top-p 0.9) vs torch's sort recipe
step bench-sample 15 "$PY" benchmarks/gpu.py --op sample --repeat 7 --warmup 2 --json "$OUT/bench-sample.json"

if [ -n "$FAILED" ]; then
    log "FAILED:$FAILED"
    exit 1
fi
log "all steps passed"
exit 0
