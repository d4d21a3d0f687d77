"""``featx build`` output bytes against a reference taken from featx before the slab pipeline.

``tests/data/build_reference`` is a small committed image set (JPEG, grayscale, CMYK, EXIF-rotated,
large JPEGs decoded at a reduced DCT scale, RGBA / palette / 16-bit PNGs, a truncated file, a file
that is no image). The digests below were computed by ``featx build`` of commit cfc2cdd (thread
decode, list-buffered writer) on that set; the stored datasets and attributes of today's build must
hash the same. Only what depends on the run itself is left out: the ``created`` timestamp, and the
source folder inside ``config`` / ``source_key`` (checked separately). A new Pillow / libjpeg-turbo /
OpenCV may decode or resize differently: then recompute the digests with the old featx and the new
libraries, never with the code under test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

REFERENCE = Path(__file__).parent / "data" / "build_reference"

#: {split: digest of the .h5, "build.json": digest of its counts and skips, "mean.json": its values}, from cfc2cdd
EXPECTED = {
    "aspect32": {
        "test": "2a5c5d9805d140959d4e50010455f422254e9efa992d1aef36be77da72112087",
        "train": "c86ec72b5aff558e962827231942efd691fefe47dc2cf8d4574b0724df0637a4",
        "val": "d303731ae30e42bae36044d8236091dc057d8581a475984ecb5c57c4f19e759a",
        "build.json": "9d45588336f28ec8e4e1298bfa312f7227c3c3907008b8b658da444f0ecb6f3f",
        "mean.json": {"R": 124.40090460526316, "G": 129.05622944078948, "B": 128.9133943256579},
    },
    "plain24": {
        "test": "ddefb67bca4ff9ff1541dd5ffc7347a5c52f5fa65464766902a6a3b5d24bbd1a",
        "train": "3b0678b7c6f02b2b8da715b7964bd5080d3b71a22bffadf63191e1d1fe60074b",
        "build.json": "75baa0dc8c9ecbfe978667a8164180db8ca546e4c07a2b1d0a4f5dc51e80447e",
        "mean.json": {"R": 133.01790935672514, "G": 126.09100877192982, "B": 138.13815789473685},
    },
}

RUNS = {
    # 4-row slabs: many slab writes, skips inside a slab; train / val / test
    "aspect32": dict(size=32, resize="aspect", val=0.2, test=0.2, seed=5, slab_rows=4, workers=2),
    # one slab, stretched, a pixel budget that skips the larger files undecoded
    "plain24": dict(size=24, resize="plain", val=0.0, test=0.25, seed=1, workers=1, max_pixels=20_000),
}

SKIP_ATTRS = {"created", "config", "source_key"}


def store_digest(path: Path) -> str:
    """sha256 of every dataset (name, dtype, shape, bytes / strings) and attribute but ``created``."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for name in sorted(f):
            ds = f[name]
            h.update(f"{name}|{ds.dtype}|{ds.shape}|{ds.chunks}".encode())
            data = ds[()]
            if ds.dtype.kind == "O":
                h.update(json.dumps([x.decode() if isinstance(x, bytes) else x for x in data]).encode())
            else:
                h.update(np.ascontiguousarray(data).tobytes())
        for k in sorted(f.attrs):
            if k in SKIP_ATTRS:
                continue
            v = f.attrs[k]
            v = v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v
            h.update(f"{k}={json.dumps(v.decode() if isinstance(v, bytes) else v)}".encode())
    return h.hexdigest()


def build_digests(out: Path) -> dict:
    digests = {p.stem: store_digest(p) for p in sorted(out.glob("*.h5"))}
    report = json.loads((out / "build.json").read_text())
    kept = {k: report[k] for k in ("label_names", "counts", "totals", "skipped_count", "skipped")}
    digests["build.json"] = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    digests["mean.json"] = json.loads((out / "mean.json").read_text())
    return digests


@pytest.mark.parametrize("name", sorted(RUNS))
def test_build_output_bytes_match_the_reference(name, tmp_path):
    from featx.build import build

    src = tmp_path / "src"
    shutil.copytree(REFERENCE, src)
    out = tmp_path / "out"
    build(src, out, progress=False, **RUNS[name])
    got = build_digests(out)
    print(json.dumps({name: got}))
    assert got == EXPECTED[name]
    with h5py.File(out / "train.h5", "r") as f:
        assert json.loads(f.attrs["config"])["src"] == str(src.resolve())
