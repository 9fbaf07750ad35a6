"""Sphinx extension: sample frames for the "Try it" page (chapters/try_it.md), at build time.

Copies the first frames of CamVid's test split (from ``fcnlib.book.camvid_root()``: never
committed, research-use data) into ``_static/fcn-samples/`` of the built book, with a
``samples.json`` that ``_static/fcn/photo.js`` turns into buttons. Without CamVid, a few synthetic
shapes images (``fcnlib.data.shapes``) instead. The model itself (``_static/fcn/camvid-cpu.onnx``)
comes with ``_widgets_js`` (``html_static_path``).
"""

import json
import shutil
from pathlib import Path

NUM_SAMPLES = 3


def _write_samples(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    from fcnlib.book import camvid_root

    out = Path(app.outdir) / "_static" / "fcn-samples"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    root = camvid_root(download_if_missing=False)
    samples = []
    if root is not None:
        lines = (root / "test.txt").read_text().split()[0::2][:NUM_SAMPLES]  # image of each pair
        for i, rel in enumerate(lines):
            src = root / rel
            shutil.copyfile(src, out / src.name)
            samples.append({"file": src.name, "label": f"CamVid test frame {i + 1}"})
    else:
        from fcnlib.data.shapes import SyntheticShapes

        data = SyntheticShapes(NUM_SAMPLES, min_size=(240, 320), max_size=(360, 480), seed=1)
        for i in range(NUM_SAMPLES):
            name = f"shapes-{i + 1}.png"
            data.raw(i)[0].save(out / name)
            samples.append({"file": name, "label": f"synthetic shapes {i + 1} (no CamVid)"})
    (out / "samples.json").write_text(json.dumps(samples, indent=1))


def setup(app):
    app.connect("build-finished", _write_samples)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
