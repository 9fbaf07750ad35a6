#!/usr/bin/env bash
# Issue 20's CamVid trainings, one after another, from the clean worktree /work/train-tree.
cd /work/train-tree
export PYTHONPATH=/work/train-tree OMP_WAIT_POLICY=PASSIVE
PY=/work/main/.venv/bin/python
for spec in "fcn32s 0" "fcn16s 0" "fcn32s 1" "fcn16s 1"; do
  set -- $spec
  name=camvid-cpu-${1#fcn}-seed$2
  echo "== $(date -u +%FT%TZ) start $name commit $(git rev-parse HEAD) dirty=$(git status --porcelain --untracked-files=no | wc -l) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -v $PY -m fcnlib train --config configs/camvid-cpu.yaml --model $1 --seed $2 --out /work/runs/$name --quiet 2>&1 | grep -v "^\s*\(Page\|Minor\|Major\|Volun\|Invol\|Swaps\|File sys\|Socket\|Signals\|Average\|Exit\|Percent\|System time\|User time\)"
  echo "== $(date -u +%FT%TZ) end $name load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
