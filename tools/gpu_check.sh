#!/usr/bin/env bash
# The prepared GPU check for a lent GPU machine: tools/gpu_check.sh COMMIT OUT_DIR.
# How to prepare and call it in one device `run`: bench/README.md, section "GPU check".
set -u -o pipefail

PROG=gpu_check.sh

usage() {
  cat <<'EOF'
usage: tools/gpu_check.sh COMMIT OUT_DIR

On a machine with one CUDA GPU, within GPU_CHECK_BUDGET_S seconds (default 280), each step under
its own time limit, a failing step not stopping the others:
  env           nvidia-smi and the Python packages                      -> summary.json
  cuda-tests    python -m pytest -m cuda tests/test_cuda.py             -> summary.json (JUnit XML in the tar)
  bench         python -m fcnlib bench --device cuda --quick            -> bench-cuda.json
  ddp           torchrun --standalone --nproc_per_node 1 tools/ddp_check.py (NCCL) -> ddp-check.json
  camvid-train  python -m fcnlib train --config configs/camvid.yaml --data-root CAMVID --max-minutes M
                (M sized from the time left, at most GPU_CHECK_MINUTES)
  camvid-eval   python -m fcnlib eval best.pt --data camvid --split test -> camvid-gpu.json
OUT_DIR then holds at most 6 files: summary.json (commit, GPU, per-step status, exit code and
duration, headline results), gpu_check.log (every step's output), bench-cuda.json, ddp-check.json,
camvid-gpu.json and gpu_check-artifacts.tar.gz (JUnit XML, bench tables and plot, training history).

COMMIT   the commit the working tree was made from: 7-40 hex digits, optionally with a suffix
         such as -dirty, or 'unknown' (the .git folder may not travel, so it is passed in)
OUT_DIR  an empty or new folder (on the device machine: "$OUT")

Environment: PYTHON (default python3), GPU_CHECK_STEPS (comma list, default all of the above),
GPU_CHECK_BUDGET_S (280), GPU_CHECK_MINUTES (2), GPU_CHECK_CAMVID (data/camvid-carry, relative to
the repository root), GPU_CHECK_LIMIT_{ENV,TESTS,BENCH,DDP,TRAIN,EVAL} (per-step limits in
seconds, 30 90 75 40 180 45), GPU_CHECK_WHEELS (folder of wheels to install first, default .whl),
GPU_CHECK_KEEP_WORK=1 (keep the scratch folder). For rehearsing the wiring on a CPU only:
GPU_CHECK_DEVICE=cpu (bench, ddp with gloo, train and eval on the CPU) and GPU_CHECK_TRAIN_ARGS
(extra `fcnlib train` options, e.g. "--width 0.0625 --crop-size 32 --epochs 1").
Exit status: 0 if every step passed; 1 if one failed, timed out or was skipped; 2 for bad arguments.
EOF
}

die() {
  echo "$PROG: error: $*" >&2
  exit 2
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac
if [ $# -ne 2 ]; then
  usage >&2
  exit 2
fi
COMMIT=$1
OUT_DIR=$2
if ! [[ "$COMMIT" =~ ^([0-9a-fA-F]{7,40}([-+][A-Za-z0-9._-]+)?|unknown)$ ]]; then
  die "COMMIT must be a commit id (7-40 hex digits, optionally with a suffix such as -dirty)" \
    "or 'unknown', got '$COMMIT'"
fi
[ -n "$OUT_DIR" ] || die "OUT_DIR is empty"
if [ -e "$OUT_DIR" ] && [ ! -d "$OUT_DIR" ]; then
  die "OUT_DIR $OUT_DIR exists and is not a folder"
fi
mkdir -p -- "$OUT_DIR" 2>/dev/null || die "cannot create OUT_DIR $OUT_DIR"
probe="$OUT_DIR/.gpu_check_write_test.$$"
if ! (: >"$probe") 2>/dev/null; then
  die "OUT_DIR $OUT_DIR is not writable"
fi
rm -f -- "$probe"
if [ -n "$(ls -A -- "$OUT_DIR")" ]; then
  die "OUT_DIR $OUT_DIR is not empty (at most 8 files come back from the device: give an empty folder)"
fi
OUT_DIR=$(cd -- "$OUT_DIR" && pwd)

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd -- "$ROOT" || die "cannot enter the repository root $ROOT"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || die "python not found: $PY (set PYTHON)"
command -v timeout >/dev/null 2>&1 || die "timeout (GNU coreutils) not found"

ALL_STEPS="env,cuda-tests,bench,ddp,camvid-train,camvid-eval"
STEPS=${GPU_CHECK_STEPS:-$ALL_STEPS}
for s in ${STEPS//,/ }; do
  case ",$ALL_STEPS," in
    *",$s,"*) ;;
    *) die "unknown step '$s' in GPU_CHECK_STEPS (steps: $ALL_STEPS)" ;;
  esac
done
int_or_die() {
  [[ "$2" =~ ^[0-9]+$ ]] || die "$1 must be a whole number of seconds, got '$2'"
}
BUDGET=${GPU_CHECK_BUDGET_S:-280}
MAX_MINUTES=${GPU_CHECK_MINUTES:-2}
CAMVID=${GPU_CHECK_CAMVID:-data/camvid-carry}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
TRAIN_ARGS=${GPU_CHECK_TRAIN_ARGS:-}
L_ENV=${GPU_CHECK_LIMIT_ENV:-30}
L_TESTS=${GPU_CHECK_LIMIT_TESTS:-90}
L_BENCH=${GPU_CHECK_LIMIT_BENCH:-75}
L_DDP=${GPU_CHECK_LIMIT_DDP:-40}
L_TRAIN=${GPU_CHECK_LIMIT_TRAIN:-180}
L_EVAL=${GPU_CHECK_LIMIT_EVAL:-45}
int_or_die GPU_CHECK_BUDGET_S "$BUDGET"
for v in ENV TESTS BENCH DDP TRAIN EVAL; do
  l="L_$v"
  int_or_die "GPU_CHECK_LIMIT_$v" "${!l}"
done
case $DEVICE in
  cuda) BACKEND=nccl ;;
  cpu) BACKEND=gloo ;;  # a rehearsal of the wiring on a CPU (tests/test_gpu_check.py), not a GPU check
  *) die "GPU_CHECK_DEVICE must be cuda or cpu, got '$DEVICE'" ;;
esac
[[ "$MAX_MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "GPU_CHECK_MINUTES must be a number, got '$MAX_MINUTES'"
EVAL_RESERVE=30  # seconds kept for camvid-eval when camvid-train sizes its budget
TRAIN_MARGIN=35  # start-up, the epoch the budget runs out in, validation and checkpoints after M minutes

START=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || die "cannot make a scratch folder"
if [ "${GPU_CHECK_KEEP_WORK:-0}" = 1 ]; then
  trap 'echo "$PROG: scratch folder kept: $WORK"' EXIT
else
  trap 'rm -rf -- "$WORK"' EXIT
fi
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"
: >"$WORK/steps.tsv"

export PYTHONUNBUFFERED=1 MPLBACKEND=Agg TQDM_MININTERVAL=10 FCNLIB_COMMIT="$COMMIT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

say() {
  echo "$*"
  echo "$*" >>"$LOG"
}

left_s() {
  echo $((START + BUDGET - $(date +%s)))
}

record() {  # name status rc seconds limit note command
  local fields=("$@") i
  for i in "${!fields[@]}"; do
    fields[i]=${fields[i]//$'\t'/ }
    fields[i]=${fields[i]//$'\n'/ }
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${fields[@]}" >>"$WORK/steps.tsv"
}

summary() {
  if ! timeout -k 5 60 "$PY" "$ROOT/tools/gpu_check_summary.py" --work "$WORK" --out "$OUT_DIR" \
    --commit "$COMMIT" --started "$START" --budget "$BUDGET" "$@" >>"$LOG" 2>&1; then
    say "$PROG: warning: tools/gpu_check_summary.py failed; writing a minimal summary.json"
    printf '{"schema": "fcnlib-gpu-check/1", "commit": "%s", "complete": false, "summary_error": true}\n' \
      "$COMMIT" >"$OUT_DIR/summary.json"
  fi
}

skip() {  # name reason
  record "$1" skipped "" "" "" "$2" ""
  say "##### gpu_check step $1: skipped ($2)"
  summary
}

want() {
  case ",$STEPS," in
    *",$1,"*) return 0 ;;
    *) return 1 ;;
  esac
}

run_step() {  # name limit command...
  local name=$1 limit=$2
  shift 2
  local left
  left=$(left_s)
  if [ "$left" -lt 5 ]; then
    skip "$name" "no time left in the ${BUDGET}s budget"
    return 1
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say "##### gpu_check step $name (limit ${limit}s, ${left}s of the budget left): $*"
  local off t0 t1 rc status secs
  off=$(stat -c %s "$LOG")
  t0=$(date +%s.%N)
  timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1 </dev/null
  rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124) status=timeout ;;
    137) status=killed ;;  # timeout's KILL after the grace period, or the kernel (memory)
    *) status=failed ;;
  esac
  tail -c +$((off + 1)) "$LOG" | tail -n 15
  say "##### gpu_check step $name: $status (exit $rc) in ${secs}s"
  record "$name" "$status" "$rc" "$secs" "$limit" "" "$*"
  summary
  [ "$rc" -eq 0 ]
}

# --- the environment ------------------------------------------------------------------------
say "$PROG: commit $COMMIT, out $OUT_DIR, budget ${BUDGET}s, steps $STEPS, python $PY, started $(date -u +%FT%TZ)"
WHEELS=${GPU_CHECK_WHEELS:-$ROOT/.whl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  if run_step wheels 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$WHEELS"/*.whl; then
    export PYTHONPATH="$ROOT:$WORK/site${PYTHONPATH#"$ROOT"}"
  fi
fi

env_info() {
  nvidia-smi --query-gpu=name,memory.total --format=csv >"$WORK/nvidia-smi.csv" 2>&1
  nvidia-smi >"$WORK/nvidia-smi.txt" 2>&1
  cat "$WORK/nvidia-smi.csv"
  "$PY" "$ROOT/tools/gpu_check_summary.py" env "$WORK/env.json"
}
export -f env_info
export WORK PY ROOT
if want env; then
  run_step env "$L_ENV" bash -c env_info
fi

# --- 1. the CUDA tests ----------------------------------------------------------------------
if want cuda-tests; then
  run_step cuda-tests "$L_TESTS" "$PY" -m pytest -m cuda tests/test_cuda.py -v -p no:cacheprovider \
    --junitxml "$WORK/cuda-tests.xml"
fi

# --- 2. the benchmark -----------------------------------------------------------------------
if want bench; then
  run_step bench "$L_BENCH" "$PY" -m fcnlib bench --device "$DEVICE" --quick --out "$WORK/bench"
  newest=$(ls -t "$WORK"/bench/*.json 2>/dev/null | grep -v '/latest-' | head -n 1)
  if [ -n "$newest" ]; then
    cp -- "$newest" "$OUT_DIR/bench-cuda.json"
    summary
  fi
fi

# --- 3. DDP under torchrun ------------------------------------------------------------------
if want ddp; then
  run_step ddp "$L_DDP" env NCCL_DEBUG="${NCCL_DEBUG:-WARN}" "$PY" -m torch.distributed.run --standalone \
    --nproc_per_node 1 tools/ddp_check.py --backend "$BACKEND" --device "$DEVICE" --out "$OUT_DIR/ddp-check.json"
fi

# --- 4. CamVid: the full-width recipe for M minutes, then the test split ---------------------
RUN_DIR="$WORK/camvid-run"
if want camvid-train; then
  if [ ! -f "$CAMVID/train.txt" ]; then
    skip camvid-train "no CamVid copy at $CAMVID (make one with tools/camvid_carry.py and carry it)"
  else
    reserve=0
    want camvid-eval && reserve=$EVAL_RESERVE
    limit=$(($(left_s) - reserve))
    [ "$limit" -gt "$L_TRAIN" ] && limit=$L_TRAIN
    if [ "$limit" -lt $((TRAIN_MARGIN + 15)) ]; then
      skip camvid-train "only ${limit}s left for training"
    else
      minutes=$(awk -v l="$limit" -v m="$TRAIN_MARGIN" -v cap="$MAX_MINUTES" \
        'BEGIN { x = (l - m) / 60; if (x > cap) x = cap; if (x < 0.25) x = 0.25; printf "%.2f", x }')
      printf '{"max_minutes": %s, "data_root": "%s", "train_limit_s": %s}\n' "$minutes" "$CAMVID" "$limit" \
        >"$WORK/camvid.json"
      run_step camvid-train "$limit" "$PY" -m fcnlib train --config configs/camvid.yaml --data-root "$CAMVID" \
        --max-minutes "$minutes" --out "$RUN_DIR" --quiet $TRAIN_ARGS
    fi
  fi
fi
if want camvid-eval; then
  ckpt="$RUN_DIR/best.pt"
  [ -f "$ckpt" ] || ckpt="$RUN_DIR/last.pt"
  if [ ! -f "$CAMVID/test.txt" ]; then
    skip camvid-eval "no CamVid copy at $CAMVID"
  elif [ ! -f "$ckpt" ]; then
    skip camvid-eval "no checkpoint from camvid-train in $RUN_DIR"
  else
    run_step camvid-eval "$L_EVAL" "$PY" -m fcnlib eval "$ckpt" --data camvid --data-root "$CAMVID" --split test \
      --device "$DEVICE" --batch-size 4 --workers 4 --out "$OUT_DIR/camvid-gpu.json" --quiet
  fi
fi

# --- the artifacts and the final summary ----------------------------------------------------
parts=()
for f in cuda-tests.xml env.json nvidia-smi.csv nvidia-smi.txt steps.tsv camvid.json bench \
  camvid-run/history.csv camvid-run/curves.png; do
  [ -e "$WORK/$f" ] && parts+=("$f")
done
if [ "${#parts[@]}" -gt 0 ]; then
  tar -czf "$OUT_DIR/gpu_check-artifacts.tar.gz" --exclude='*.pt' -C "$WORK" "${parts[@]}" >>"$LOG" 2>&1 ||
    say "$PROG: warning: could not write gpu_check-artifacts.tar.gz"
fi
summary --final
timeout -k 5 30 "$PY" "$ROOT/tools/gpu_check_summary.py" digest "$OUT_DIR/summary.json" 2>&1 | tee -a "$LOG"
if awk -F'\t' '$2 != "ok" { bad = 1 } END { exit bad ? 1 : 0 }' "$WORK/steps.tsv" && [ -s "$WORK/steps.tsv" ]; then
  say "$PROG: all steps passed in $(($(date +%s) - START))s"
  exit 0
fi
say "$PROG: not every step passed (see summary.json) after $(($(date +%s) - START))s"
exit 1
