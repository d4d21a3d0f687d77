"""Property-based fuzzing (hypothesis): hostile bytes through the decoder, hostile CSV rows through
discovery, hostile file names through discovery, build and the stored paths.

* Image bytes: real JPEG / PNG / WebP / BMP / TIFF files made here, then truncated, bit-flipped,
  spliced with random headers, or replaced by random bytes. :func:`featx.data.decode.load_image`
  must either return a ``(16, 16, 3)`` uint8 image or raise :class:`ImageDecodeError` with a listed
  reason: nothing else (the worker's catch-all in ``decode_task`` is not what is tested here).
* CSV rows: random cells (commas, quotes, newlines, NUL, Unicode, absolute and ``..`` paths)
  through :func:`featx.data.discover.discover`: a :class:`Discovery` or a one-line
  :class:`FeatxError`, never another exception.
* File names: random bytes (invalid UTF-8, newlines, backslashes, 255-byte names) in class folders
  whose names are not UTF-8 either: discovery finds every image under its exact bytes, a build
  stores it, and the stored ``paths`` give the same bytes back (:func:`featx.utils.escape_name`).

The CI run is short and derandomized (``FEATX_FUZZ_EXAMPLES``, default 300 per property); for a
long run: ``FEATX_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from featx.data.decode import ImageDecodeError, load_image
from featx.data.discover import Discovery, discover
from featx.errors import FeatxError
from featx.utils import escape_name, printable_name, unescape_name

EXAMPLES = int(os.environ.get("FEATX_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
#: The reasons a skipped image may give (the start of ``str(ImageDecodeError)``).
LISTED = ("empty file", "cannot read file", "not an image", "undecodable image", "image too large")


def _encode(fmt: str, **kw) -> bytes:
    rng = np.random.default_rng(len(fmt))
    arr = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if fmt == "PNG-P":
        img, fmt = img.convert("P"), "PNG"
    if fmt == "PNG-LA":
        img, fmt = img.convert("LA"), "PNG"
    if fmt == "PNG-16":
        img, fmt = Image.fromarray(arr[..., 0].astype(np.uint16) * 257), "PNG"
    if fmt == "JPEG-CMYK":
        img, fmt = img.convert("CMYK"), "JPEG"
    if fmt == "JPEG-EXIF":
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated: exif_transpose runs on whatever the mutation leaves of it
        kw["exif"], fmt = exif, "JPEG"
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


SEEDS = {
    "jpg": _encode("JPEG", quality=80),
    "progressive.jpg": _encode("JPEG", quality=70, progressive=True),
    "png": _encode("PNG"),
    "palette.png": _encode("PNG-P"),
    "gray-alpha.png": _encode("PNG-LA"),
    "webp": _encode("WEBP", quality=80),
    "lossless.webp": _encode("WEBP", lossless=True),
    "16bit.png": _encode("PNG-16"),
    "cmyk.jpg": _encode("JPEG-CMYK"),
    "exif.jpg": _encode("JPEG-EXIF"),
    "bmp": _encode("BMP"),
    "tif": _encode("TIFF"),
    "lzw.tif": _encode("TIFF", compression="tiff_lzw"),
}
MAGIC = [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM", b"II*\x00", b"MM\x00*",
         b"GIF89a", b"\x00\x00\x00\x0cjP  "]


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    how = draw(st.sampled_from(["truncate", "flip", "splice", "header", "random"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "flip":
        for pos in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=12)):
            data[pos] ^= 1 << draw(st.integers(0, 7))
    elif how == "splice":  # overwrite a run of bytes (sizes, chunk lengths, tables) with random ones
        start = draw(st.integers(0, len(data) - 1))
        junk = draw(st.binary(min_size=1, max_size=16))
        data[start : start + len(junk)] = junk
    elif how == "header":
        data = bytearray(draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=300)))
    else:
        data = bytearray(draw(st.binary(max_size=400)))
    return f"{how}.{name.rsplit('.', 1)[-1]}", bytes(data)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seed_files_decode(fuzz_dir):
    for name, data in SEEDS.items():
        p = fuzz_dir / f"seed.{name}"
        p.write_bytes(data)
        img = load_image(p, 16)
        assert img.shape == (16, 16, 3) and img.dtype == np.uint8, name


@FUZZ
@given(case=mutated(), resize=st.sampled_from(["aspect", "plain"]))
def test_mutated_image_bytes_decode_or_give_a_listed_skip(fuzz_dir, case, resize):
    name, data = case
    p = fuzz_dir / f"case.{name}"
    p.write_bytes(data)
    try:
        img = load_image(p, 16, resize, max_pixels=1_000_000)
    except ImageDecodeError as e:
        assert str(e).startswith(LISTED), str(e)
        return
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8


CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["a.png", "b/c.jpg", "../up.png", "/abs/x.png", "", " ", "path", "label", "x\x00y.png",
                     "dir/", ".", "..", "a,b.png", 'q"uote.png', "ünï.png", "cat"]),
)


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("csvfuzz")
    img = _encode("PNG")
    for rel in ("a.png", "b/c.jpg", "ünï.png", "a,b.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(img)
    return root


#: a row that names a file of ``csv_root`` with a label: most examples then discover something
GOOD_ROW = st.tuples(st.sampled_from(["a.png", "b/c.jpg", "ünï.png", "a,b.png", " a.png "]),
                     st.sampled_from(["cat", " dog", "ünï", "a,b"])).map(list)


def _expected_rows(rows: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """The CSV rules from the README: an optional ``path,label`` header, blank rows ignored, every
    other row needs a path and a label. Returns (listed rows, malformed rows)."""
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    listed = [r for r in rows if any(c.strip() for c in r)]
    return listed, [r for r in listed if len(r) < 2 or not r[0].strip() or not r[1].strip()]


@FUZZ
@given(rows=st.lists(st.one_of(st.lists(CELL, max_size=4), GOOD_ROW), max_size=8), raw=st.booleans(),
       junk=st.binary(max_size=40))
def test_random_csv_rows_never_crash_discovery(csv_root, rows, raw, junk):
    p = csv_root / "labels.csv"
    if raw:  # not even valid CSV: cells joined by hand, random bytes appended
        p.write_bytes("\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass") + junk)
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        p.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
    try:
        d = discover(p)
    except FeatxError as e:
        assert len(str(e).strip().splitlines()) == 1, str(e)
        if not raw and "expected 'path,label'" in str(e):
            assert _expected_rows(rows)[1], "a well-formed CSV was refused"
        return
    assert isinstance(d, Discovery)
    assert len(d.paths) == len(d.label_strings)
    for rel in d.paths:
        assert (d.root / rel).is_file()
    if raw:
        return
    listed, malformed = _expected_rows(rows)
    assert not malformed, f"malformed rows {malformed} were accepted"
    # every listed row is a discovered image or a listed skip, in order, labels stripped
    assert len(d.paths) + len(d.skipped) == len(listed)
    found = [(r[0].strip(), r[1].strip()) for r in listed if (csv_root / r[0].strip()).is_file()]
    assert list(zip(d.paths, d.label_strings)) == found


# ------------------------------------------------------------------------------ file names
#: A file name: 1..255 bytes of anything but "/" and NUL (invalid UTF-8, newlines, backslashes, spaces).
NAME_BYTES = st.binary(min_size=1, max_size=60).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_"))
FILE_NAME = st.one_of(
    st.tuples(NAME_BYTES, st.sampled_from([b".png", b".PNG", b".jpg", b".txt", b""])).map(b"".join),
    st.integers(200, 251).map(lambda n: b"\xff" * (n - 4) + b".png"),  # very long (255 bytes at most)
    st.sampled_from([b"a\nb.png", b"\\xff.png", b"\\\\.png", b"caf\xe9.png", b"\xed\xa0\x80.png", b" .png"]),
).filter(lambda b: b not in (b".", b".."))


@pytest.fixture(scope="module")
def names_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("names")


@settings(FUZZ, max_examples=max(10, EXAMPLES // 10))
@given(names=st.lists(st.tuples(st.sampled_from([b"cat", b"d\xf6g", b"\\x"]), FILE_NAME), min_size=2, max_size=8,
                      unique_by=lambda t: t))
def test_random_file_names_round_trip_through_discovery_build_and_stored_paths(names_dir, names):
    """Every image file is found under its exact bytes, built, and its stored path gives the same bytes back."""
    import shutil

    from featx.build import build
    from featx.store import open_store

    root = names_dir / "src"
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(names_dir / "out", ignore_errors=True)
    png = SEEDS["png"]
    images = set()
    for i, cls in enumerate((b"cat", b"d\xf6g")):  # two classes always, so a build is possible
        names.append((cls, b"base%d.png" % i))
    for cls, name in names:
        folder = os.path.join(os.fsencode(root), cls)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(png)
        if os.path.splitext(name)[1].lower() in (b".png", b".jpg"):
            images.add(cls + b"/" + name)
    d = discover(root)
    assert {os.fsencode(p) for p in d.paths} == images
    assert len(d.skipped) == len({(c, n) for c, n in names}) - len(images)
    labels = {printable_name(os.fsdecode(c)) for c, n in names if c + b"/" + n in images}
    assert set(d.label_names) == labels and all(s.encode("utf-8") for s in labels)  # "d\\xf6g": valid UTF-8 text
    res = build(root, names_dir / "out", size=8, val=0, test=0, workers=1, progress=False)
    with open_store(res.files["train"], kind="images") as r:
        assert {os.fsencode(p) for p in r.paths} == images
        assert len(r) == len(images) and set(r.label_names) == labels


@FUZZ
@given(raw=st.binary(max_size=80))
def test_escaped_names_are_utf8_and_round_trip(raw):
    name = os.fsdecode(raw)
    text = escape_name(name)
    text.encode("utf-8")  # valid UTF-8 text, whatever the bytes
    assert os.fsencode(unescape_name(text)) == raw
    try:
        plain = raw.decode("utf-8") if b"\\" not in raw else None
    except UnicodeDecodeError:
        plain = None
    if plain is not None:  # valid UTF-8 without a backslash is stored as it is
        assert text == name
