"""Hostile input on the image side: symlink loops in discovery, decompression bombs, large JPEGs."""

from __future__ import annotations

import json
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFile
from PIL.JpegImagePlugin import JpegImageFile

from featx.cli import cli
from featx.data import decode
from featx.data.decode import ImageDecodeError, decode_task, load_image, read_rgb
from featx.data.discover import discover, list_image_files
from featx.store import open_store
from tests.conftest import color_image, save


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ------------------------------------------------------------------------------ symlink loops
def _two_classes(root: Path, rng, n: int = 5) -> None:
    for c, name in enumerate(("cat", "dog")):
        for i in range(n):
            save(color_image(rng, tint=c), root / name / f"{name}_{i}.png")


@pytest.mark.timeout(60)
def test_symlink_loop_is_skipped_and_nothing_is_counted_twice(tmp_path, rng):
    photos = tmp_path / "photos"
    _two_classes(photos, rng)
    (photos / "cat" / "loop").symlink_to("..")  # the loop: cat/loop -> photos
    d = discover(photos)
    assert d.class_counts() == {"cat": 5, "dog": 5}
    assert len(set(d.paths)) == len(d.paths) == 10
    assert all(p.startswith(label + "/") for p, label in zip(d.paths, d.label_strings))  # dogs stay dogs
    (skip,) = d.skipped
    assert skip["path"] == "cat/loop" and "symlink loop" in skip["reason"]

    r = run("build", photos, "-o", tmp_path / "data", "--size", 8, "--val", 0, "--test", 2, "-j", 1)
    assert r.exit_code == 0, r.output
    rows = []
    for split in ("train", "test"):
        with open_store(tmp_path / "data" / f"{split}.h5", kind="images") as s:
            rows += [(p, s.label_names[y]) for p, y in zip(s.paths, s.labels)]
    assert len(rows) == 10 and len({p for p, _ in rows}) == 10  # no image twice, so none in train and test
    assert all(p.startswith(label + "/") for p, label in rows)
    report = json.loads((tmp_path / "data" / "build.json").read_text())
    assert any("symlink loop" in s["reason"] for s in report["skipped"])


@pytest.mark.timeout(60)
def test_two_links_terminate_with_right_labels(tmp_path, rng):
    """Two loops, a link to another class, and a cycle outside the source: it ends, no duplicates."""
    photos = tmp_path / "photos"
    _two_classes(photos, rng, n=3)
    (photos / "cat" / "loop").symlink_to("..")
    (photos / "dog" / "loop").symlink_to("..")
    (photos / "dog" / "cats").symlink_to("../cat")  # would label cat images 'dog'
    ext_a, ext_b = tmp_path / "ext" / "a", tmp_path / "ext" / "b"
    save(color_image(rng), ext_a / "extra.png")
    ext_b.mkdir(parents=True)
    (ext_a / "to_b").symlink_to(ext_b)
    (ext_b / "to_a").symlink_to(ext_a)  # a cycle outside the source
    (photos / "cat" / "more").symlink_to(ext_a)  # a legitimate link out of the source: followed once
    d = discover(photos)
    assert d.class_counts() == {"cat": 4, "dog": 3}
    assert len(set(d.paths)) == len(d.paths)
    assert "cat/more/extra.png" in d.paths and d.label_strings[d.paths.index("cat/more/extra.png")] == "cat"
    assert all(label == "cat" for p, label in zip(d.paths, d.label_strings) if p.startswith("cat/"))
    reasons = {s["path"]: s["reason"] for s in d.skipped}
    assert "symlink loop" in reasons["cat/loop"] and "symlink loop" in reasons["dog/loop"]
    assert "scanned at its own path" in reasons["dog/cats"]
    assert "symlink loop" in reasons["cat/more/to_b/to_a"]

    paths, skipped = list_image_files([photos])  # featx predict's walk: same guard
    assert len(paths) == len(set(paths)) == 7
    assert len(skipped) == 4


# ------------------------------------------------------------------------------ decompression bombs
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> Path:
    """A few-hundred-byte PNG whose header declares ``width x height`` RGB pixels (all zero)."""
    rows = zlib.compressobj(9)
    body = rows.compress(b"\0" * (1 + 3 * width) * 8) + rows.flush()  # 8 rows; the rest is "truncated"
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path


def test_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 2000
    loads = []

    def spy_load(self):  # never let the test itself decode 400 M pixels
        loads.append(self.size)
        raise AssertionError(f"decoder called on {self.size}")

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError, match=r"image too large \(.*400,000,000 pixels > --max-pixels"):
            read_rgb(bomb)
        below_pillows_error = png_bomb(tmp_path / "bomb2.png", 10_000, 10_000)  # Pillow only warns at 100 M
        with pytest.raises(ImageDecodeError, match=r"\(10000x10000 = 100,000,000 pixels > --max-pixels 89,478,485"):
            read_rgb(below_pillows_error)
        index, img, reason = decode_task((7, str(bomb), 32, "aspect"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loads == []
    assert (index, img) == (7, None) and "not decoded" in reason
    assert peak < 5_000_000
    assert Image.MAX_IMAGE_PIXELS == decode.DEFAULT_MAX_PIXELS  # Pillow's own guard is left as it was


def test_max_pixels_budget_on_build(tmp_path, rng):
    src = tmp_path / "src"
    _two_classes(src, rng, n=3)  # 24x20 = 480 pixels each
    save(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), src / "dog" / "big.png")  # 1,600 pixels
    png_bomb(src / "cat" / "bomb.png")
    r = run("build", src, "-o", tmp_path / "o", "--size", 8, "--val", 0, "--test", 0, "-j", 1, "--max-pixels", 1000)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o" / "build.json").read_text())
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"dog/big.png", "cat/bomb.png"}
    assert "40x40 = 1,600 pixels > --max-pixels 1,000" in reasons["dog/big.png"]
    assert report["totals"] == {"train": 6} and report["config"]["max_pixels"] == 1000
    # the default budget (Pillow's, ~89 M) keeps the 40x40 image and still refuses the bomb
    r = run("build", src, "-o", tmp_path / "o2", "--size", 8, "--val", 0, "--test", 0, "-j", 1)
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o2" / "build.json").read_text())
    assert [s["path"] for s in report["skipped"]] == ["cat/bomb.png"]
    assert "--max-pixels" in run("extract", "--help").output and "--max-pixels" in run("predict", "--help").output


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (2048, 1536), (200, 30, 30)).save(big, quality=80)
    drafts = []
    real_draft = JpegImageFile.draft

    def spy(self, mode, size):
        drafts.append(size)
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImageFile, "draft", spy)
    arr = read_rgb(big, min_side=64)
    assert drafts == [(64, 64)] and arr.shape == (192, 256, 3)  # 1/8 scale, never the full 3 M pixels
    out = load_image(big, 64)
    assert out.shape == (64, 64, 3) and abs(int(out[..., 0].mean()) - 200) < 3


def test_only_image_formats_are_opened(tmp_path):
    """A PostScript file named .jpg is not handed to Pillow's EPS plugin (which runs Ghostscript)."""
    eps = tmp_path / "photo.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n")
    with pytest.raises(ImageDecodeError, match="not an image"):
        read_rgb(eps)
    gif = tmp_path / "anim.png"  # GIF data behind a .png name: still an image
    Image.new("RGB", (20, 20), (0, 0, 255)).save(gif, format="GIF")
    assert read_rgb(gif).shape == (20, 20, 3)


# ------------------------------------------------------------------------------ warnings on threads
def test_decoding_on_threads_keeps_pillow_quiet_without_silencing_the_process(tmp_path):
    """A JPEG whose EXIF points past the file makes Pillow warn. Decoded on threads, featx stays
    quiet about it, and the process's other warnings still show: catch_warnings entered by the
    threads left a catch-all ``ignore`` filter in the process (every later warning lost)."""
    import io
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010E, 2, 100, 1000) + struct.pack("<I", 0)
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buf, "JPEG", exif=b"Exif\x00\x00" + tiff)
    bad = tmp_path / "bad_exif.jpg"
    bad.write_bytes(buf.getvalue())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert read_rgb(bad).shape == (16, 16, 3)  # the main thread: quiet too
        with ThreadPoolExecutor(2) as pool:
            assert all(a.shape == (16, 16, 3) for a in pool.map(read_rgb, [bad] * 400))
        assert not [w for w in seen if "Skipping tag" in str(w.message)]
        warnings.warn("still shown", UserWarning, stacklevel=2)
        assert [str(w.message) for w in seen] == ["still shown"]
