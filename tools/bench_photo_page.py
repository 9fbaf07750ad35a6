#!/usr/bin/env python3
"""Benchmark of the "Try it" page (a benchmark, not a test): browser vs PyTorch, page weight.

In one run on one machine: the page's model time (``window.fcnResult.ms``, onnxruntime-web,
WebAssembly, one thread) for a 480x360 CamVid frame (a synthetic image without CamVid) and for a
12-megapixel photo (4000x3000, the frame upscaled), against ``fcnlib.predict`` on the same photos
with the card's settings (one intra-op thread, like the page; and torch's default threads), as a
ratio; the bytes the page loads for its first photo; and the cold first-photo time (page opened,
photo given, labels back, runtime and model loaded on the way). The load average is recorded:
on a shared machine these are not idle figures.

    python tools/bench_photo_page.py --html _build/html --out bench/results/photo_page.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from check_photo_page import PAGE, give, make_photos  # noqa: E402
from check_widgets import CHROMIUM_ARGS, DEFAULT_CHROMIUM, PageLog, _router, serve  # noqa: E402


def torch_times(photos: list[Path], repeats: int) -> dict[str, dict[str, float]]:
    """Best-of-``repeats`` seconds of ``fcnlib.predict`` (card settings) per photo and threads."""
    import torch

    from fcnlib.models import get_weights
    from fcnlib.predict import load_image, predict
    from fcnlib.trained import load_trained

    model = load_trained(weights="camvid-cpu").model
    p = get_weights("camvid-cpu").meta["predict"]
    out: dict[str, dict[str, float]] = {}
    default_threads = torch.get_num_threads()
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        for photo in photos:
            image = load_image(photo)  # decoding is not model time (the page's ms excludes it)
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                predict(model, image, mode="scaled", train_size=p["train_size"],
                        scales=p["scales"], flip=p["flip"])
                best = min(best, time.perf_counter() - t)
            out.setdefault(photo.name, {})[f"torch_{threads}t_ms"] = 1000 * best
    torch.set_num_threads(default_threads)
    return out


def browser_times(root: Path, photos: list[Path], repeats: int, chromium: str) -> dict:
    """Cold first photo, page bytes, and best-of-``repeats`` model ms per photo."""
    from playwright.sync_api import sync_playwright

    log, sizes = PageLog(), {}
    httpd, base = serve(root)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(service_workers="block")
            context.route("**/*", _router(base, log))
            page = context.new_page()
            page.on("requestfinished", lambda r: sizes.__setitem__(r.url, r.sizes()["responseBodySize"]))
            t0 = time.perf_counter()
            page.goto(base + PAGE, wait_until="load")
            assert give(page, photos[0], 600_000) == "done"
            cold = time.perf_counter() - t0
            result = {"cold_first_photo_s": cold, "page_bytes": sum(sizes.values()),
                      "largest": sorted(sizes.items(), key=lambda kv: -kv[1])[:3], "photos": {}}
            for photo in photos:
                best = float("inf")
                for _ in range(repeats):
                    assert give(page, photo, 600_000) == "done"
                    best = min(best, page.evaluate("() => window.fcnResult.ms"))
                result["photos"][photo.name] = {"browser_ms": best}
            browser.close()
    finally:
        httpd.shutdown()
    if log.blocked:
        raise SystemExit(f"non-local requests: {log.blocked[:3]}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=Path("_build/html"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/photo_page.json"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chromium", default=DEFAULT_CHROMIUM)
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        good, _ = make_photos(Path(tmp), big=False)
        small = good[0]
        big = Path(tmp) / "photo-4000x3000.jpg"
        Image.open(small).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC).save(big, quality=90)
        photos = [small, big]
        result = browser_times(args.html.resolve(), photos, args.repeats, args.chromium)
        for name, times in torch_times(photos, args.repeats).items():
            row = result["photos"][name]
            row.update(times)
            row["ratio_browser_over_torch_1t"] = row["browser_ms"] / row["torch_1t_ms"]
            row["size"] = "x".join(map(str, Image.open(Path(tmp) / name if name != small.name else small).size))
    result["loadavg_before_after"] = [load_before, os.getloadavg()]
    result["cpu_count"] = os.cpu_count()
    result["command"] = "python " + " ".join(sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    for name, row in result["photos"].items():
        print(f"{row['size']:>10}: browser {row['browser_ms']:.0f} ms, torch 1 thread "
              f"{row['torch_1t_ms']:.0f} ms (ratio {row['ratio_browser_over_torch_1t']:.2f})")
    print(f"page bytes {result['page_bytes']:,}; cold first photo {result['cold_first_photo_s']:.1f} s; "
          f"load {result['loadavg_before_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
