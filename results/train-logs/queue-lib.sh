# run NAME TREE ARGS...: one training from the clean worktree TREE, logged with commit and load.
run() {
  name=$1; tree=$2; shift 2
  cd "$tree" || return 1
  export PYTHONPATH=$tree OMP_WAIT_POLICY=PASSIVE
  echo "== $(date -u +%FT%TZ) start $name commit $(git rev-parse HEAD) dirty=$(git status --porcelain --untracked-files=no | wc -l) load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== command: fcnlib train --config configs/camvid-cpu.yaml $* --out /work/runs/$name --quiet"
  /work/main/.venv/bin/python -u -m fcnlib train --config configs/camvid-cpu.yaml "$@" --out /work/runs/$name --quiet
  echo "== $(date -u +%FT%TZ) end $name rc=$? load: $(cut -d' ' -f1-3 /proc/loadavg)"
}
