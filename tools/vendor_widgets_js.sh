#!/usr/bin/env bash
# Re-fetch the JavaScript that the static book serves itself (no CDN):
#   * @jupyter-widgets/html-manager  -> _widgets_js/html-manager/  (renders ipywidgets from embedded state)
#   * mathjax (3.x, es5 build)       -> _widgets_js/mathjax/       (renders $...$ maths)
# from the npm registry with `npm pack` at pinned versions, checks the sha256 of
# each tarball, copies the needed files and checks them against _widgets_js/SHA256SUMS.
#
# The files are committed, so a book build needs no network; this script is only
# for updating them or re-checking them.
#
# Usage:
#   tools/vendor_widgets_js.sh            # fetch, verify, (re)write _widgets_js/{html-manager,mathjax}
#   tools/vendor_widgets_js.sh --check    # offline: verify the committed files against SHA256SUMS
#   tools/vendor_widgets_js.sh --dest DIR # write into DIR instead of <repo>/_widgets_js
#   tools/vendor_widgets_js.sh --update-sums  # after bumping a version: rewrite SHA256SUMS (review the diff!)
set -euo pipefail

HTML_MANAGER_VERSION="1.0.15"   # html-manager 1.0.x = widget protocol 2 = ipywidgets 8.x
HTML_MANAGER_TGZ_SHA256="2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638"
MATHJAX_VERSION="3.2.2"         # Sphinx 7's default mathjax_path points at mathjax@3 tex-mml-chtml.js
MATHJAX_TGZ_SHA256="1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC_DIR="$REPO_ROOT/_widgets_js"        # where README.md, SHA256SUMS, licences live
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

verify_tree() {  # verify_tree DIR: every file listed in SHA256SUMS exists in DIR and matches
  (cd "$1" && grep -v ' onnxruntime-web/' "$SRC_DIR/SHA256SUMS" | sha256sum --quiet --strict -c -)  # those: vendor_onnxruntime_web.sh
}

if [[ "$MODE" == "check" ]]; then
  verify_tree "$DEST"
  echo "OK: files in $DEST match $SRC_DIR/SHA256SUMS"
  exit 0
fi

command -v npm >/dev/null || { echo "npm is needed (apt-get install -y npm)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch NAME VERSION SHA256 -> unpacks into $WORK/<basename>/package
  local name="$1" version="$2" sha="$3" base
  base="$(basename "$name")"
  mkdir -p "$WORK/$base"
  (cd "$WORK/$base" && npm pack --silent "$name@$version" >/dev/null)
  local tgz
  tgz="$(ls "$WORK/$base"/*.tgz)"
  echo "$sha  $tgz" | sha256sum --quiet --strict -c - \
    || { echo "sha256 mismatch for $name@$version tarball" >&2; exit 1; }
  tar -xzf "$tgz" -C "$WORK/$base"
  echo "fetched $name@$version (sha256 $sha)"
}

fetch "@jupyter-widgets/html-manager" "$HTML_MANAGER_VERSION" "$HTML_MANAGER_TGZ_SHA256"
fetch "mathjax" "$MATHJAX_VERSION" "$MATHJAX_TGZ_SHA256"

# html-manager: the self-contained bundle (base + controls + output widgets, CSS
# injected by the script, no require.js) and the woff2 fonts its CSS refers to
# (webpack resolves them relative to embed.js; browsers take woff2 first).
HM="$WORK/html-manager/package/dist"
mkdir -p "$DEST/html-manager"
rm -f "$DEST"/html-manager/embed.js "$DEST"/html-manager/embed.js.LICENSE.txt "$DEST"/html-manager/*.woff2
cp "$HM/embed.js" "$HM/embed.js.LICENSE.txt" "$DEST/html-manager/"
cp "$HM"/*.woff2 "$DEST/html-manager/"

# MathJax: the component Sphinx uses by default, its CHTML fonts and the TeX
# extensions that its autoload pulls in on demand (\boldsymbol, \color, ...),
# plus the a11y/ui/sre components the menu may load.
MJ="$WORK/mathjax/package"
rm -rf "$DEST/mathjax/es5"
mkdir -p "$DEST/mathjax/es5/output/chtml/fonts" "$DEST/mathjax/es5/input/tex"
cp "$MJ/es5/tex-mml-chtml.js" "$DEST/mathjax/es5/"
cp -r "$MJ/es5/output/chtml/fonts/woff-v2" "$DEST/mathjax/es5/output/chtml/fonts/"
cp -r "$MJ/es5/input/tex/extensions" "$DEST/mathjax/es5/input/tex/"
cp "$MJ/LICENSE" "$DEST/mathjax/LICENSE"

if [[ "$MODE" == "update-sums" ]]; then
  (cd "$DEST" && find html-manager mathjax -type f ! -name LICENSE -print0 | sort -z \
     | xargs -0 sha256sum; grep ' onnxruntime-web/' "$SRC_DIR/SHA256SUMS" || true) > "$SRC_DIR/SHA256SUMS.new"
  mv "$SRC_DIR/SHA256SUMS.new" "$SRC_DIR/SHA256SUMS"
  echo "rewrote $SRC_DIR/SHA256SUMS ($(wc -l < "$SRC_DIR/SHA256SUMS") files)"
fi
verify_tree "$DEST"
echo "OK: vendored html-manager@$HTML_MANAGER_VERSION and mathjax@$MATHJAX_VERSION into $DEST, sha256 verified"
