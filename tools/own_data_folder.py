"""Write CamVid as a user's own folder data set with five merged classes (results/README.md).

    python tools/own_data_folder.py --camvid ../shared/data/camvid --out /tmp/own-data

DIR/images/<stem>.jpg|.png (the CamVid frames, copied), DIR/masks/<stem>.png (8-bit palette PNGs:
road, pavement, vehicle, person, other; 255 = CamVid's Unlabelled), DIR/{train,val,test}.txt
(CamVid's splits) and DIR/classes.yaml. Chapter 9 builds the same folder, step by step.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from fcnlib.data import CAMVID_CLASSES, build_dataset
from fcnlib.data.classfile import write_class_file

NAMES = ["road", "pavement", "vehicle", "person", "other"]
COLOURS = [(128, 64, 128), (60, 40, 222), (64, 0, 128), (220, 20, 60), (128, 128, 128)]
MERGE = {"Road": "road", "Pavement": "pavement", "Car": "vehicle", "Pedestrian": "person",
         "Bicyclist": "person"}  # every other CamVid class -> other


def lookup() -> np.ndarray:
    """CamVid label (0..10, 255) -> merged label (0..4, 255)."""
    table = np.full(256, 255, dtype=np.uint8)
    for k, name in enumerate(CAMVID_CLASSES):
        table[k] = NAMES.index(MERGE.get(name, "other"))
    return table


def write_split(camvid: Path, split: str, out: Path, limit: int | None) -> None:
    source = build_dataset("camvid", camvid, split, train=False)
    palette = [v for c in COLOURS for v in c]
    palette += [0] * (768 - len(palette))  # 256 colours: a shorter palette renumbers index 255
    stems = []
    for index in range(min(limit or len(source), len(source))):
        image_path, _ = source.pairs[index]
        _, labels = source.raw(index)
        shutil.copyfile(image_path, out / "images" / image_path.name)  # .jpg or .png
        mask = Image.fromarray(lookup()[labels], "P")
        mask.putpalette(palette)
        mask.save(out / "masks" / f"{image_path.stem}.png")
        stems.append(image_path.stem)
    (out / f"{split}.txt").write_text("\n".join(stems) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", default="../shared/data/camvid")
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=None, help="first N frames of each split")
    args = parser.parse_args()
    out = Path(args.out)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    for split in ("train", "val", "test"):
        write_split(Path(args.camvid), split, out, args.limit)
    write_class_file(out, NAMES, COLOURS)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
