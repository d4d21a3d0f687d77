"""Benchmark ``featx build`` against the book's single-process HDF5 builder on the same JPEGs.

Prints one JSON object: images/s of both and of a decode-only loop (the same files decoded by
Pillow on all cores' threads, nothing else done), the ratios featx / book (target >= 6) and
featx / decode-only (target >= 0.5), the load average, and bytes on disk per image against the
raw uint8 bytes of one image (target <= 1.1; the book stores float64: 8).

    python scripts/bench_build.py --n 1000 --size 256 --width 500 --height 375
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np


def make_jpegs(folder: Path, n: int, width: int, height: int, classes: int = 2, seed: int = 0) -> None:
    """Photo-like JPEGs (smooth gradients + shapes + noise), ``label.N.jpg`` names like Dogs vs Cats."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(n):
        c = i % classes
        base = np.stack([(xx * rng.uniform(0.2, 0.6) + yy * rng.uniform(0.1, 0.4) + rng.uniform(0, 90)) % 256 for _ in range(3)], -1)
        img = base.astype(np.uint8)
        for _ in range(6):
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(img, center, int(rng.integers(10, 80)), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"class{c}.{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


class BookAspectAwarePreprocessor:
    """The book's AspectAwarePreprocessor (imutils-style resize of the shorter side, crop, resize)."""

    def __init__(self, width: int, height: int, inter=cv2.INTER_AREA):
        self.width, self.height, self.inter = width, height, inter

    def preprocess(self, image):
        (h, w) = image.shape[:2]
        dw = dh = 0
        if w < h:
            r = self.width / float(w)
            image = cv2.resize(image, (self.width, int(h * r)), interpolation=self.inter)
            dh = int((image.shape[0] - self.height) / 2.0)
        else:
            r = self.height / float(h)
            image = cv2.resize(image, (int(w * r), self.height), interpolation=self.inter)
            dw = int((image.shape[1] - self.width) / 2.0)
        (h, w) = image.shape[:2]
        image = image[dh : h - dh, dw : w - dw]
        return cv2.resize(image, (self.width, self.height), interpolation=self.inter)


class BookHDF5DatasetWriter:
    """The book's HDF5DatasetWriter: float64 ``images``, a 1000-row buffer."""

    def __init__(self, dims, output_path, buf_size=1000):
        self.db = h5py.File(output_path, "w")
        self.data = self.db.create_dataset("images", dims, dtype="float")
        self.labels = self.db.create_dataset("labels", (dims[0],), dtype="int")
        self.buf_size = buf_size
        self.buffer = {"data": [], "labels": []}
        self.idx = 0

    def add(self, rows, labels):
        self.buffer["data"].extend(rows)
        self.buffer["labels"].extend(labels)
        if len(self.buffer["data"]) >= self.buf_size:
            self.flush()

    def flush(self):
        i = self.idx + len(self.buffer["data"])
        self.data[self.idx : i] = self.buffer["data"]
        self.labels[self.idx : i] = self.buffer["labels"]
        self.idx = i
        self.buffer = {"data": [], "labels": []}

    def close(self):
        if len(self.buffer["data"]) > 0:
            self.flush()
        self.db.close()


def book_build(src: Path, out: Path, size: int) -> int:
    paths = sorted(src.glob("*.jpg"))
    labels = [0 if p.name.startswith("class0") else 1 for p in paths]
    aap = BookAspectAwarePreprocessor(size, size)
    writer = BookHDF5DatasetWriter((len(paths), size, size, 3), str(out))
    for p, y in zip(paths, labels):
        image = cv2.imread(str(p))
        image = aap.preprocess(image)
        writer.add([image], [y])
    writer.close()
    return len(paths)


def decode_only(src: Path, workers: int) -> tuple[int, float]:
    """The same files decoded by Pillow on ``workers`` threads, nothing else done (the decoder's limit)."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    paths = sorted(src.glob("*.jpg"))

    def one(p):
        with Image.open(p) as im:
            im.load()
        return 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        n = sum(ex.map(one, paths))
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="number of JPEGs (default 1000)")
    ap.add_argument("--size", type=int, default=256, help="stored side (default 256)")
    ap.add_argument("--width", type=int, default=500, help="JPEG width (default 500, like Dogs vs Cats)")
    ap.add_argument("--height", type=int, default=375, help="JPEG height (default 375)")
    ap.add_argument("--workers", type=int, default=None, help="featx decode processes (default: all cores)")
    args = ap.parse_args()

    from featx.build import build
    from featx.data.pool import default_workers

    tmp = Path(tempfile.mkdtemp(prefix="featx-bench-build-"))
    try:
        src = tmp / "jpegs"
        make_jpegs(src, args.n, args.width, args.height)
        raw_bytes = args.size * args.size * 3

        # featx: all splits to train (val/test = 0) so both write the same N images
        t0 = time.perf_counter()
        res = build(src, tmp / "featx", size=args.size, val=0, test=0, workers=args.workers, progress=False)
        featx_s = time.perf_counter() - t0
        featx_bytes = (tmp / "featx" / "train.h5").stat().st_size

        t0 = time.perf_counter()
        n_book = book_build(src, tmp / "book.h5", args.size)
        book_s = time.perf_counter() - t0
        book_bytes = (tmp / "book.h5").stat().st_size

        n_dec, dec_s = decode_only(src, args.workers or default_workers())

        n = sum(sum(c.values()) for c in res.counts.values())
        out = {
            "benchmark": "build",
            "machine": {"cpus": default_workers(), "platform": platform.platform(), "python": platform.python_version()},
            "images": n,
            "jpeg_size": [args.width, args.height],
            "stored_size": args.size,
            "featx": {
                "images_per_s": round(n / featx_s, 2),
                "seconds": round(featx_s, 3),
                "workers": args.workers or default_workers(),
                "bytes_per_image": round(featx_bytes / n, 1),
                "bytes_per_raw_uint8_byte": round(featx_bytes / n / raw_bytes, 4),
            },
            "book_loop": {
                "images_per_s": round(n_book / book_s, 2),
                "seconds": round(book_s, 3),
                "bytes_per_image": round(book_bytes / n_book, 1),
                "bytes_per_raw_uint8_byte": round(book_bytes / n_book / raw_bytes, 4),
            },
            "decode_only": {"images_per_s": round(n_dec / dec_s, 2), "seconds": round(dec_s, 3),
                            "how": "Pillow Image.open + load (full size, no draft) on all cores' threads, nothing else"},
            "load_avg_1min": round(os.getloadavg()[0], 2),
            "speed_ratio_featx_over_book": round((n / featx_s) / (n_book / book_s), 3),
            "featx_over_decode_only": round((n / featx_s) / (n_dec / dec_s), 3),
            "targets": {"speed_ratio": ">= 6", "featx_over_decode_only": ">= 0.5", "bytes_per_raw_uint8_byte": "<= 1.1"},
        }
        out["meets_targets"] = {
            "speed_ratio": out["speed_ratio_featx_over_book"] >= 6,
            "featx_over_decode_only": out["featx_over_decode_only"] >= 0.5,
            "bytes": out["featx"]["bytes_per_raw_uint8_byte"] <= 1.1,
        }
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
