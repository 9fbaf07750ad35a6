#!/usr/bin/env bash
# The rest of issue 20's CamVid trainings, after the FCN-32s seed-0 run (pid 2227) ends; from the
# clean worktree /work/train-tree2 (a commit that records the stages of a staged run).
while kill -0 2227 2>/dev/null; do sleep 10; done
echo "== $(date -u +%FT%TZ) end camvid-cpu-32s-seed0 (pid 2227) load: $(cut -d' ' -f1-3 /proc/loadavg)"
cd /work/train-tree2
export PYTHONPATH=/work/train-tree2 OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
run() {
  name=$1; shift
  echo "== $(date -u +%FT%TZ) start $name commit $(git rev-parse HEAD) dirty=$(git status --porcelain --untracked-files=no | wc -l) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== command: fcnlib train --config configs/camvid-cpu.yaml $* --out /work/runs/$name --quiet"
  $PY -u -m fcnlib train --config configs/camvid-cpu.yaml "$@" --out /work/runs/$name --quiet
  echo "== $(date -u +%FT%TZ) end $name rc=$? load: $(cut -d' ' -f1-3 /proc/loadavg)"
}
run camvid-cpu-16s-seed0 --model fcn16s --seed 0
run camvid-cpu-staged-seed0 --model fcn8s --stages "fcn32s fcn16s fcn8s" --epochs 33 --seed 0
run camvid-cpu-32s-seed1 --model fcn32s --seed 1
run camvid-cpu-16s-seed1 --model fcn16s --seed 1
