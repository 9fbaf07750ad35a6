#!/usr/bin/env bash
. /work/runs/queue-lib.sh
run camvid-cpu-16s-seed0 /work/train-tree2 --model fcn16s --seed 0 --threads 1
run camvid-cpu-32s-seed1 /work/train-tree2 --model fcn32s --seed 1 --threads 1
run camvid-cpu-16s-seed1 /work/train-tree2 --model fcn16s --seed 1 --threads 1
