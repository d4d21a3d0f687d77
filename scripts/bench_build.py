"""Benchmark ``featx build`` against the book's single-process HDF5 builder on the same files.

Prints one JSON object: images/s of featx, of the book's loop and of a decode-only loop (the same
files decoded by Pillow on all cores' threads, full size, nothing else done: the decoder's
limit), the ratios featx / book (target >= 6) and featx / decode-only (target >= 0.5) per repeat
(and featx / decode-only in CPU seconds per image, which other work on the machine moves less),
the load average around each repeat, and bytes on disk per image against the raw uint8 bytes of
one image (target <= 1.1; the book stores float64: 8). The three run one after the other inside
each repeat, in a rotating order, on the same files; the process is warmed first (imports, one
tiny build) so no repeat pays a one-time import.

Image sets (``--set``):

* ``photos``: ``--n`` photo-like JPEGs of ``--width x --height`` (default 500x375, Dogs vs Cats).
* ``mixed``: a set the code was not tuned on: sizes from 120 to 1,600 px a side in random aspect
  ratios, 70% JPEG (quality 70-95, some grayscale, some large enough for a reduced DCT scale), 30%
  PNG (some with alpha).

``--opencv-baseline`` adds a decode-only loop with OpenCV (``cv2.imread``, all cores' threads)
beside Pillow's, which stays the headline; ``--seed`` makes another set of the same kind (one the
code was not tuned on).

    python scripts/bench_build.py --n 300 --repeat 3
    python scripts/bench_build.py --n 300 --repeat 3 --set mixed
    python scripts/bench_build.py --n 1000 --repeat 3 --set mixed --seed 7 --opencv-baseline
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


def make_mixed(folder: Path, n: int, classes: int = 2, seed: int = 1) -> None:
    """The ``mixed`` set: other sizes, aspect ratios, JPEG qualities, grayscale, PNGs with alpha."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        side = int(rng.choice([120, 200, 320, 480, 640, 800, 1024, 1600], p=[.1, .15, .15, .2, .15, .1, .1, .05]))
        ratio = rng.uniform(0.5, 2.0)
        w, h = (side, max(32, int(side / ratio))) if ratio >= 1 else (max(32, int(side * ratio)), side)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([(xx * rng.uniform(0.1, 0.9) + yy * rng.uniform(0.1, 0.9) + rng.uniform(0, 200)) % 256
                        for _ in range(3)], -1).astype(np.uint8)
        for _ in range(8):
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(img, center, int(rng.integers(5, max(6, side // 4))), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        kind = rng.random()
        if kind < 0.6:
            cv2.imwrite(str(folder / f"class{c}.{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
        elif kind < 0.7:
            cv2.imwrite(str(folder / f"class{c}.{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        elif kind < 0.9:
            cv2.imwrite(str(folder / f"class{c}.{i}.png"), img)
        else:
            alpha = (xx * 255 / max(w - 1, 1)).astype(np.uint8)
            cv2.imwrite(str(folder / f"class{c}.{i}.png"), np.dstack([img, alpha]))


def image_files(src: Path) -> list[Path]:
    return sorted(p for p in src.iterdir() if p.suffix in (".jpg", ".png"))


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
    paths = image_files(src)
    labels = [0 if p.name.startswith("class0") else 1 for p in paths]
    aap = BookAspectAwarePreprocessor(size, size)
    writer = BookHDF5DatasetWriter((len(paths), size, size, 3), str(out))
    for p, y in zip(paths, labels):
        image = cv2.imread(str(p))
        image = aap.preprocess(image)
        writer.add([image], [y])
    writer.close()
    return len(paths)


def decode_only(paths: list[Path], workers: int) -> tuple[int, float]:
    """The same files decoded by Pillow on ``workers`` threads, full size, nothing else done."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def one(p):
        with Image.open(p) as im:
            im.load()
        return 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        n = sum(ex.map(one, paths))
    return n, time.perf_counter() - t0


def decode_only_opencv(paths: list[Path], workers: int) -> tuple[int, float]:
    """The same files decoded by OpenCV (``cv2.imread``, full size, BGR as stored, alpha kept) on
    ``workers`` threads, nothing else: a second decoder limit beside Pillow's, not the headline."""
    from concurrent.futures import ThreadPoolExecutor

    def one(p):
        return int(cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        n = sum(ex.map(one, paths))
    return n, time.perf_counter() - t0


def featx_build(src: Path, out: Path, size: int, workers: int | None):
    from featx.build import build

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = build(src, out, size=size, val=0, test=0, workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    n = sum(sum(c.values()) for c in res.counts.values())
    return n, seconds, (out / "train.h5").stat().st_size


def _cpu_s() -> float:
    """CPU seconds of this process so far, all threads (user + system)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _stats(xs: list[float]) -> dict:
    return {"min": round(min(xs), 3), "median": round(float(np.median(xs)), 3), "max": round(max(xs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("photos", "mixed"), default="photos", help="image set (default photos)")
    ap.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    ap.add_argument("--size", type=int, default=256, help="stored side (default 256)")
    ap.add_argument("--width", type=int, default=500, help="photos: JPEG width (default 500, like Dogs vs Cats)")
    ap.add_argument("--height", type=int, default=375, help="photos: JPEG height (default 375)")
    ap.add_argument("--workers", type=int, default=None, help="featx decode threads and decode-only threads (default: all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="repeats, each running all three (default 3)")
    ap.add_argument("--no-book", action="store_true", help="leave the book's loop out (it is slow)")
    ap.add_argument("--opencv-baseline", action="store_true",
                    help="also time a decode-only loop with OpenCV (reported beside Pillow's, which stays the headline)")
    ap.add_argument("--seed", type=int, default=None, help="image set seed (default: photos 0, mixed 1)")
    args = ap.parse_args()

    from featx.data.pool import default_workers

    workers = args.workers or default_workers()
    tmp = Path(tempfile.mkdtemp(prefix="featx-bench-build-"))
    try:
        src = tmp / "images"
        if args.set == "photos":
            make_jpegs(src, args.n, args.width, args.height, seed=0 if args.seed is None else args.seed)
        else:
            make_mixed(src, args.n, seed=1 if args.seed is None else args.seed)
        paths = image_files(src)
        raw_bytes = args.size * args.size * 3

        # warm-up: imports (scikit-learn's alone takes seconds on a busy machine) and one tiny build
        t0 = time.perf_counter()
        warm = tmp / "warm"
        warm.mkdir()
        few = [p for p in paths if p.name.startswith("class0")][:4] + [p for p in paths if p.name.startswith("class1")][:4]
        for p in few:
            shutil.copy(p, warm / p.name)
        featx_build(warm, tmp / "warm-out", args.size, args.workers)
        decode_only(paths[:8], workers)
        if args.opencv_baseline:
            decode_only_opencv(paths[:8], workers)
        warm_s = time.perf_counter() - t0

        runs = []
        order = ["featx", "book", "decode_only"] if not args.no_book else ["featx", "decode_only"]
        if args.opencv_baseline:
            order.append("decode_only_opencv")
        for r in range(args.repeat):
            run = {"order": order[r % len(order):] + order[: r % len(order)], "load_avg_1min_before": round(os.getloadavg()[0], 2)}
            for what in run["order"]:
                cpu0 = _cpu_s()
                if what == "featx":
                    n, s, size_b = featx_build(src, tmp / "featx", args.size, args.workers)
                    run["featx"] = {"images": n, "seconds": round(s, 3), "images_per_s": round(n / s, 2),
                                    "bytes_per_raw_uint8_byte": round(size_b / n / raw_bytes, 4)}
                elif what == "book":
                    t0 = time.perf_counter()
                    n = book_build(src, tmp / "book.h5", args.size)
                    s = time.perf_counter() - t0
                    run["book_loop"] = {"images": n, "seconds": round(s, 3), "images_per_s": round(n / s, 2),
                                        "bytes_per_raw_uint8_byte": round((tmp / "book.h5").stat().st_size / n / raw_bytes, 4)}
                    (tmp / "book.h5").unlink()
                else:
                    n, s = (decode_only if what == "decode_only" else decode_only_opencv)(paths, workers)
                    run[what] = {"images": n, "seconds": round(s, 3), "images_per_s": round(n / s, 2)}
                run[what if what.startswith("decode_only") else "book_loop" if what == "book" else "featx"]["cpu_s"] = round(_cpu_s() - cpu0, 3)
            run["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
            run["featx_over_decode_only"] = round(run["featx"]["images_per_s"] / run["decode_only"]["images_per_s"], 3)
            # the same in CPU time per image (less at the mercy of other work on the machine than wall time)
            run["cpu_featx_over_decode_only"] = round(run["decode_only"]["cpu_s"] / run["featx"]["cpu_s"], 3)
            if "decode_only_opencv" in run:
                run["featx_over_decode_only_opencv"] = round(run["featx"]["images_per_s"] / run["decode_only_opencv"]["images_per_s"], 3)
            if "book_loop" in run:
                run["featx_over_book"] = round(run["featx"]["images_per_s"] / run["book_loop"]["images_per_s"], 3)
            runs.append(run)

        out = {
            "benchmark": "build",
            "set": args.set,
            "machine": {"cpus": default_workers(), "platform": platform.platform(), "python": platform.python_version()},
            "images": len(paths),
            "image_size": [args.width, args.height] if args.set == "photos" else "120-1600 px a side, mixed",
            "seed": args.seed,
            "stored_size": args.size,
            "workers": workers,
            "warmup_s": round(warm_s, 3),
            "decode_only_how": "Pillow Image.open + load (full size, no draft) on all cores' threads, nothing else",
            "runs": runs,
            "featx_over_decode_only": _stats([r["featx_over_decode_only"] for r in runs]),
            "cpu_featx_over_decode_only": _stats([r["cpu_featx_over_decode_only"] for r in runs]),
            "featx_images_per_s": _stats([r["featx"]["images_per_s"] for r in runs]),
            "decode_only_images_per_s": _stats([r["decode_only"]["images_per_s"] for r in runs]),
            "bytes_per_raw_uint8_byte": runs[0]["featx"]["bytes_per_raw_uint8_byte"],
            "targets": {"featx_over_book": ">= 6", "featx_over_decode_only": ">= 0.5", "bytes_per_raw_uint8_byte": "<= 1.1"},
        }
        if args.opencv_baseline:
            out["featx_over_decode_only_opencv"] = _stats([r["featx_over_decode_only_opencv"] for r in runs])
            out["decode_only_opencv_images_per_s"] = _stats([r["decode_only_opencv"]["images_per_s"] for r in runs])
        if not args.no_book:
            out["featx_over_book"] = _stats([r["featx_over_book"] for r in runs])
            out["book_images_per_s"] = _stats([r["book_loop"]["images_per_s"] for r in runs])
        out["meets_targets_every_run"] = {
            "featx_over_decode_only": min(r["featx_over_decode_only"] for r in runs) >= 0.5,
            "bytes": out["bytes_per_raw_uint8_byte"] <= 1.1,
        }
        if not args.no_book:
            out["meets_targets_every_run"]["featx_over_book"] = min(r["featx_over_book"] for r in runs) >= 6
        print(json.dumps(out, indent=2), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
