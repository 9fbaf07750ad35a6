#!/usr/bin/env bash
. /work/runs/queue-lib.sh
# resumed with one intra-op thread (an execution setting: --resume allows it) because the shared
# machine made the recipe's two OpenMP threads 4-9x slower than one
run camvid-cpu-32s-seed0 /work/train-tree --model fcn32s --seed 0 --resume --threads 1
run camvid-cpu-staged-seed0 /work/train-tree2 --model fcn8s --stages "fcn32s fcn16s fcn8s" --epochs 33 --seed 0 --threads 1
