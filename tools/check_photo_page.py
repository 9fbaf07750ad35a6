#!/usr/bin/env python3
"""Browser check of the "Try it" page (chapters/try_it.md), offline, against ``fcnlib predict``.

Serves the built book on 127.0.0.1 (as ``tools/check_widgets.py`` does, whose server and request
blocker it reuses), opens the page in Debian's headless Chromium through Python ``playwright``
(``/usr/bin/chromium``; no ``playwright install``), blocks every request that is not to that
server, and drives the page through its contract (``#fcn-photo``, ``document.body.dataset.
fcnStatus``, ``window.fcnResult``, ``#fcn-message``):

* nothing is predicted on load;
* 3 CamVid test frames at their own size (3 synthetic images where CamVid is absent), a portrait
  JPEG stored sideways with an EXIF rotation tag, and an odd size (333 x 517 PNG): the labels must
  equal those of ``fcnlib predict --weights camvid-cpu`` (its ``_mask.png``) on >= ``--min-agree``
  of the pixels, at the photo's upright size;
* an empty file, a text file and a truncated JPEG each give ``"error"`` and one line in
  ``#fcn-message``, and the next photo gives ``"done"``;
* the first sample-frame button, where the build wrote some, gives ``"done"``;
* ``--big``: also a 6000 x 4000 (24 MP) JPEG.

Prints one line per photo (agreement, model ms) and ``PASS``; exit 1 with ``FAIL: ...``.

    python tools/check_photo_page.py --html _build/html
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_widgets import CHROMIUM_ARGS, DEFAULT_CHROMIUM, PageLog, _router, serve  # noqa: E402

PAGE = "chapters/try_it.html"
# JS: the last result's labels as base64 (fast to move out of the page)
LABELS_JS = """() => { const a = window.fcnResult.labels; let s = '';
  for (let i = 0; i < a.length; i += 32768) s += String.fromCharCode.apply(null, a.subarray(i, i + 32768));
  return btoa(s); }"""


class CheckFailed(Exception):
    """One-line reason."""


def make_photos(folder: Path, big: bool) -> tuple[list[Path], list[Path]]:
    """(good photos, bad files) written into ``folder``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fcnlib.book import camvid_root

    root = camvid_root(download_if_missing=False)
    good = []
    if root is not None:
        stems = (root / "test.txt").read_text().split()[0::2]
        for rel in (stems[0], stems[len(stems) // 2], stems[-1]):
            good.append(root / rel)
    else:
        from fcnlib.data.shapes import SyntheticShapes

        data = SyntheticShapes(3, min_size=(240, 320), max_size=(360, 480), seed=1)
        for i in range(3):
            good.append(folder / f"shapes-{i}.png")
            data.raw(i)[0].save(good[-1])
    base = Image.open(good[0]).convert("RGB")
    # A portrait photo (an upright 3:4 crop of the first frame) stored sideways, as cameras do,
    # with EXIF orientation 6: a viewer (and fcnlib.predict) turns it 90 degrees clockwise.
    portrait = folder / "portrait-exif6.jpg"
    w, h = base.size
    upright = base.crop(((w - h * 3 // 4) // 2, 0, (w + h * 3 // 4) // 2, h))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(portrait, quality=95, exif=exif)
    odd = folder / "odd-333x517.png"
    base.resize((333, 517), Image.Resampling.BILINEAR).save(odd)
    good += [portrait, odd]
    if big:
        good.append(folder / "big-6000x4000.jpg")
        base.resize((6000, 4000), Image.Resampling.BICUBIC).save(good[-1], quality=90)
    bad = [folder / "empty.jpg", folder / "notes.jpg", folder / "truncated.jpg"]
    bad[0].write_bytes(b"")
    bad[1].write_text("this is text, not a photo\n")
    data = Path(good[0]).read_bytes()
    bad[2].write_bytes(data[: len(data) // 2])
    return good, bad


def references(photos: list[Path], folder: Path) -> dict[Path, np.ndarray]:
    """``fcnlib predict --weights camvid-cpu`` label maps (the card's settings), by photo."""
    out = folder / "predict"
    cmd = [sys.executable, "-m", "fcnlib", "predict", "--weights", "camvid-cpu", *map(str, photos)]
    subprocess.run([*cmd, "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return {p: np.array(Image.open(out / f"{p.stem}_mask.png")) for p in photos}


def give(page, path: Path, timeout_ms: int) -> str:
    """Set ``path`` on #fcn-photo; wait for "done" or "error"; return the status."""
    page.evaluate("() => { delete document.body.dataset.fcnStatus; window.fcnResult = undefined; }")
    page.set_input_files("#fcn-photo", str(path))
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.body.dataset.fcnStatus)", timeout=timeout_ms
    )
    return page.evaluate("() => document.body.dataset.fcnStatus")


def labels_of(page) -> tuple[np.ndarray, float]:
    w, h, ms = page.evaluate("() => [fcnResult.width, fcnResult.height, fcnResult.ms]")
    flat = np.frombuffer(base64.b64decode(page.evaluate(LABELS_JS)), np.uint8)
    return flat.reshape(h, w), ms


def check(page, good, bad, refs, min_agree: float, timeout_ms: int) -> list[str]:
    """Every check on an opened page; lines to print, or CheckFailed."""
    lines = []
    page.wait_for_timeout(500)
    if page.evaluate("() => document.body.dataset.fcnStatus") is not None:
        raise CheckFailed("the page predicted something on load")
    for path in good:
        status = give(page, path, timeout_ms)
        if status != "done":
            msg = page.inner_text("#fcn-message")
            raise CheckFailed(f"{path.name}: status {status!r} ({msg})")
        labels, ms = labels_of(page)
        ref = refs[path]
        if labels.shape != ref.shape:
            raise CheckFailed(f"{path.name}: page labels {labels.shape}, fcnlib predict {ref.shape}")
        agree = float((labels == ref).mean())
        print(f"  {path.name}: {100 * agree:.2f} %", flush=True)
        lines.append(f"{path.name} {ref.shape[1]}x{ref.shape[0]}: {100 * agree:.2f} % of the "
                     f"pixels as fcnlib predict; model {ms:.0f} ms")
        if agree < min_agree:
            raise CheckFailed(lines[-1] + f" (< {100 * min_agree:.0f} %)")
    for path in bad:
        status = give(page, path, timeout_ms)
        msg = page.inner_text("#fcn-message").strip()
        if status != "error" or not msg or "\n" in msg:
            raise CheckFailed(f"{path.name}: status {status!r}, message {msg!r}")
        lines.append(f"{path.name}: error, {msg!r}")
        if give(page, good[0], timeout_ms) != "done":
            raise CheckFailed(f"after {path.name} the next photo did not give 'done'")
    buttons = page.locator("button.fcn-sample")
    if buttons.count():
        page.evaluate("() => { delete document.body.dataset.fcnStatus; }")
        buttons.first.click()
        page.wait_for_function("() => document.body.dataset.fcnStatus === 'done'", timeout=timeout_ms)
        lines.append(f"sample button {buttons.first.inner_text()!r}: done ({buttons.count()} buttons)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=Path("_build/html"), help="built book root")
    ap.add_argument("--chromium", default=DEFAULT_CHROMIUM)
    ap.add_argument("--min-agree", type=float, default=0.99)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per photo")
    ap.add_argument("--big", action="store_true", help="also a 24-megapixel photo")
    args = ap.parse_args(argv)
    root = args.html.resolve()
    if not (root / PAGE).is_file():
        print(f"FAIL: {PAGE} not found under {args.html} (build the book first)")
        return 1
    from playwright.sync_api import sync_playwright

    log = PageLog()
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = make_photos(Path(tmp), args.big)
        refs = references(good, Path(tmp))
        print(f"references from fcnlib predict: {len(refs)} photos", flush=True)
        httpd, base = serve(root)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                context = browser.new_context(service_workers="block")
                context.route("**/*", _router(base, log))
                page = context.new_page()
                page.on("pageerror", lambda exc: log.js_errors.append(str(exc).splitlines()[0]))
                page.goto(base + PAGE, wait_until="load")
                lines = check(page, good, bad, refs, args.min_agree, int(args.timeout * 1000))
                browser.close()
        except CheckFailed as exc:
            print(f"FAIL: {exc}")
            return 1
        finally:
            httpd.shutdown()
    for line in lines:
        print(f"ok   {line}")
    if log.blocked:
        print(f"FAIL: {len(log.blocked)} non-local request(s), first {log.blocked[0]}")
        return 1
    print(f"PASS: {len(good)} photos, {len(bad)} bad files, 0 non-local requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
