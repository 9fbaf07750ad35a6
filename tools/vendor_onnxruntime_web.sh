#!/usr/bin/env bash
# Re-fetch onnxruntime-web, the runtime of the book's "Try it" page (chapters/try_it.md), from the
# npm registry at a pinned version, check the tarball's sha256, copy only the files the page needs
# (no source maps) into _widgets_js/onnxruntime-web/ and check them against _widgets_js/SHA256SUMS:
#   ort.wasm.min.js               the CPU (WebAssembly) build of the JS API, as a classic script (window.ort)
#   ort-wasm-simd-threaded.mjs    its Emscripten glue, imported by ort.wasm.min.js
#   ort-wasm-simd-threaded.wasm   the runtime itself (SIMD; threads only used where crossOriginIsolated)
# (MIT licence, per its package.json; the tarball has no LICENSE file)
# The files are committed, so a book build needs no network; this script is only for updating
# or re-checking them.
#
# Usage:
#   tools/vendor_onnxruntime_web.sh             # fetch, verify, (re)write _widgets_js/onnxruntime-web
#   tools/vendor_onnxruntime_web.sh --check     # offline: committed files match SHA256SUMS
#   tools/vendor_onnxruntime_web.sh --dest DIR  # write into DIR instead
#   tools/vendor_onnxruntime_web.sh --update-sums  # after bumping the version (review the diff!)
set -euo pipefail

ORT_WEB_VERSION="1.31.1"
ORT_WEB_TGZ_SHA256="bdccdb9fbb9ab537247c0c734e9b1d2b1b338b4f2a09faa58f0dc1cfa27c312c"
FILES=(ort.wasm.min.js ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DIR="$REPO_ROOT/_widgets_js"
DEST="$SRC_DIR"
MODE="fetch"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --check) MODE="check"; shift ;;
    --update-sums) MODE="update-sums"; shift ;;
    --dest) DEST="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

verify() {  # the onnxruntime-web lines of SHA256SUMS, checked in DIR
  (cd "$1" && grep ' onnxruntime-web/' "$SRC_DIR/SHA256SUMS" | sha256sum --quiet --strict -c -)
}

if [[ "$MODE" == "check" ]]; then
  verify "$DEST"
  echo "OK: onnxruntime-web files in $DEST match $SRC_DIR/SHA256SUMS"
  exit 0
fi

command -v npm >/dev/null || { echo "npm is needed (apt-get install -y npm)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "onnxruntime-web@$ORT_WEB_VERSION" >/dev/null)
TGZ="$(ls "$WORK"/*.tgz)"
echo "$ORT_WEB_TGZ_SHA256  $TGZ" | sha256sum --quiet --strict -c - \
  || { echo "sha256 mismatch for the onnxruntime-web@$ORT_WEB_VERSION tarball" >&2; exit 1; }
tar -xzf "$TGZ" -C "$WORK"
rm -rf "$DEST/onnxruntime-web"
mkdir -p "$DEST/onnxruntime-web"
for f in "${FILES[@]}"; do cp "$WORK/package/dist/$f" "$DEST/onnxruntime-web/"; done

if [[ "$MODE" == "update-sums" ]]; then
  others="$(grep -v ' onnxruntime-web/' "$SRC_DIR/SHA256SUMS" || true)"
  mine="$(cd "$DEST" && for f in "${FILES[@]}"; do sha256sum "onnxruntime-web/$f"; done)"
  printf '%s\n%s\n' "$others" "$mine" | sed '/^$/d' > "$SRC_DIR/SHA256SUMS"
  echo "rewrote the onnxruntime-web lines of $SRC_DIR/SHA256SUMS"
fi
verify "$DEST"
echo "OK: vendored onnxruntime-web@$ORT_WEB_VERSION into $DEST/onnxruntime-web, sha256 verified"
