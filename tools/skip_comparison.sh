#!/usr/bin/env bash
# FCN-32s vs FCN-16s vs FCN-8s (and staged vs at once) on CamVid: the evaluations behind
# results/camvid-cpu-{32s,16s,staged}*.json and the boundary figures of results/camvid-cpu.json.
#
#   tools/skip_comparison.sh TARGET...     TARGET: fcn8s 32s 16s 32s-seed1 16s-seed1 staged
#   tools/skip_comparison.sh ship-32s ship-16s     export the seed-0 models as shipped weights
#   tools/skip_comparison.sh check-32s check-16s   `fcnlib eval --weights` on the 233 frames
#
# Every model is evaluated exactly like the shipped FCN-8s: the 233 CamVid test frames at 0.5x
# and 0.625x scale plus their mirror images, logits averaged at 480x360, batch 8, plus boundary
# accuracy at band widths 2 4 8 16 32 (`--boundary`). Before the test, each new model is also
# evaluated on val (101 frames) at 0.5, 0.625 and both (flip on), the choice the FCN-8s's scales
# were made by; those files go to results/camvid-cpu-val/ (the test scales stay the FCN-8s's for
# every model, so that the rows compare one protocol; the val files show what another choice
# would have given). fcn8s re-evaluates the shipped weights (`--weights camvid-cpu`, the seed-0
# checkpoint itself is not kept) into results/camvid-cpu.json.
#
# The trainings (not run here) used configs/camvid-cpu.yaml with only the model changed:
#   fcnlib train --config configs/camvid-cpu.yaml --model fcn32s --seed S --out RUNS/camvid-cpu-32s-seedS --quiet
#   fcnlib train --config configs/camvid-cpu.yaml --model fcn16s --seed S --out RUNS/camvid-cpu-16s-seedS --quiet
#   fcnlib train --config configs/camvid-cpu.yaml --model fcn8s --stages "fcn32s fcn16s fcn8s" \
#       --epochs 33 --seed 0 --out RUNS/camvid-cpu-staged-seed0 --quiet
# (their exact command lines are in each checkpoint and so in each results file).
#
# ship-32s / ship-16s (after 32s / 16s, with results/camvid-cpu-{32s,16s}.json committed):
# evaluates the first 20 test frames (the card's quick check, runs/camvid-cpu-NN-first20.json),
# then tools/export_weights.py writes fcnlib/pretrained/camvid-cpu-NN.{pt,json}, with the card's
# `predict` defaults and terms copied from camvid-cpu's card. check-32s / check-16s evaluate the
# shipped weights by name on the 233 test frames (runs/camvid-cpu-NN-weights-check.json) and
# compare the mIoU with the card's.
#
# Run it from a clean committed tree: every results file records the commit and `dirty`. The
# script refuses to start a target while tracked files differ from the commit (a target that
# overwrites a tracked results file makes the tree dirty: commit, then run the next target).
# Environment: RUNS (checkpoints, default /work/runs), CAMVID (default ../shared/data/camvid),
# PYTHON (default python), VAL=0 to skip the val evaluations.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-/work/runs}
CAMVID=${CAMVID:-../shared/data/camvid}
PYTHON=${PYTHON:-python}
VAL=${VAL:-1}
COMMON=(--data camvid --data-root "$CAMVID" --batch-size 8 --flip --quiet)

checkpoint() {  # TARGET -> checkpoint path
    case "$1" in
        32s | 16s) echo "$RUNS/camvid-cpu-$1-seed0/best.pt" ;;
        32s-seed1 | 16s-seed1) echo "$RUNS/camvid-cpu-${1%-seed1}-seed1/best.pt" ;;
        staged) echo "$RUNS/camvid-cpu-staged-seed0/fcn8s/best.pt" ;;
        *) echo "skip_comparison: unknown target $1 (fcn8s 32s 16s 32s-seed1 16s-seed1 staged)" >&2
           exit 2 ;;
    esac
}

run() {
    echo "+ fcnlib $*   [load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M:%S) UTC]"
    "$PYTHON" -m fcnlib "$@"
}

require_clean() {
    if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
        echo "skip_comparison: tracked files differ from the commit; commit first, then run $1" >&2
        exit 2
    fi
}

TRAIN_COMMIT_32s=418ccb8ff3ed84fdcf57e5f8a36927ae549e6060  # /work/runs/train-log.txt
TRAIN_COMMIT_16s=bc47138ce558fd21c74e3b0d0ae33dc15eff84a0  # /work/runs/train-log2.txt

ship() {  # 32s | 16s
    local name=camvid-cpu-$1 commit_var=TRAIN_COMMIT_$1 ckpt
    ckpt=$(checkpoint "$1")
    [ -f "results/$name.json" ] || { echo "skip_comparison: results/$name.json first" >&2; exit 2; }
    mkdir -p runs
    run eval "$ckpt" --data camvid --data-root "$CAMVID" --split test --batch-size 4 --limit 20 \
        --scale 0.5 0.625 --flip --quiet --out "runs/$name-first20.json" --overwrite
    mapfile -t card < <("$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1]))
print(c["terms"]); p=c["predict"]; print(p["mode"]); print(p["train_size"])
print(" ".join(map(str, p["scales"])))' fcnlib/pretrained/camvid-cpu.json)
    # shellcheck disable=SC2086  # the scales are separate words
    "$PYTHON" tools/export_weights.py "$ckpt" --name "$name" --results "results/$name.json" \
        --subset-results "runs/$name-first20.json" --train-commit "${!commit_var}" \
        --train-command "fcnlib train --config configs/camvid-cpu.yaml --model fcn${1%s}s --seed 0 --out /work/runs/$name-seed0 --quiet" \
        --terms "${card[0]}" --predict-mode "${card[1]}" --predict-train-size "${card[2]}" \
        --predict-scales ${card[3]} --predict-flip
}

check() {  # 32s | 16s
    local name=camvid-cpu-$1
    mkdir -p runs
    run eval --weights "$name" --data camvid --data-root "$CAMVID" --split test --batch-size 8 \
        --quiet --out "runs/$name-weights-check.json" --overwrite
    "$PYTHON" - "$name" <<'PY'
import json, sys
name = sys.argv[1]
card = json.load(open(f"fcnlib/pretrained/{name}.json"))["metrics"]["mIoU"]
got = json.load(open(f"runs/{name}-weights-check.json"))["metrics"]["mIoU"]
print(f"{name}: card mIoU {card:.6f}, fcnlib eval --weights {got:.6f}")
sys.exit(0 if abs(card - got) < 1e-9 else 1)
PY
}

for target in "$@"; do
    case "$target" in
        ship-32s | ship-16s) require_clean "$target"; ship "${target#ship-}"; continue ;;
        check-32s | check-16s) check "${target#check-}"; continue ;;
    esac
    require_clean "$target"
    if [ "$target" = fcn8s ]; then
        run eval --weights camvid-cpu "${COMMON[@]}" --split test --scale 0.5 0.625 \
            --boundary 2 4 8 16 32 --out results/camvid-cpu.json --overwrite
        continue
    fi
    ckpt=$(checkpoint "$target")
    [ -f "$ckpt" ] || { echo "skip_comparison: $ckpt is not there (yet)" >&2; exit 2; }
    name=camvid-cpu-$target
    if [ "$VAL" = 1 ]; then
        mkdir -p results/camvid-cpu-val
        for scales in 0.5 0.625 "0.5 0.625"; do
            # shellcheck disable=SC2086  # the scales are separate words
            run eval "$ckpt" "${COMMON[@]}" --split val --scale $scales \
                --out "results/camvid-cpu-val/$name-val-${scales// /+}.json" --overwrite
        done
    fi
    run eval "$ckpt" "${COMMON[@]}" --split test --scale 0.5 0.625 --boundary 2 4 8 16 32 \
        --out "results/$name.json" --overwrite
done
echo "done [load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M:%S) UTC]"
