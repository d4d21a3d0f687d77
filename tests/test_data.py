"""Image decoding (odd formats, bad files), resizing, discovery layouts, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featx.data import ImageDecodeError, discover, load_image, read_rgb, stratified_split
from featx.data.decode import aspect_aware_resize, plain_resize
from featx.errors import FeatxError
from tests.conftest import color_image, save, write_exif_rotated

# ---------------------------------------------------------------- decoding


def test_gray_alpha_palette_cmyk_16bit_become_rgb(tmp_path, rng):
    rgb = color_image(rng, 16, 12, tint=2)
    gray = save(rgb[..., 0], tmp_path / "g.png")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 0  # one transparent pixel -> white, not its hidden colour
    alpha = save(rgba, tmp_path / "a.png")
    pal = tmp_path / "p.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(pal)
    cmyk = tmp_path / "c.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk, quality=95)
    sixteen = tmp_path / "s.png"
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(sixteen)

    for p in (gray, alpha, pal, cmyk, sixteen):
        out = read_rgb(p)
        assert out.shape == (12, 16, 3) and out.dtype == np.uint8, p
    np.testing.assert_array_equal(read_rgb(gray)[..., 0], rgb[..., 0])
    np.testing.assert_array_equal(read_rgb(gray)[..., 2], rgb[..., 0])
    a = read_rgb(alpha)
    assert tuple(a[0, 0]) == (255, 255, 255)
    np.testing.assert_array_equal(a[1:, 1:], rgb[1:, 1:])
    np.testing.assert_array_equal(read_rgb(sixteen)[..., 0], rgb[..., 1])  # 16-bit scaled, not clipped
    assert np.abs(read_rgb(cmyk).astype(int) - rgb).mean() < 12


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # white band on the left of the stored pixels
    p = write_exif_rotated(tmp_path / "rot.jpg", arr, orientation=6)
    out = read_rgb(p)
    assert out.shape == (40, 20, 3)  # rotated 90 degrees for viewing
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # band now on top


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty file"),
        (b"this is plain text, not a picture", "not an image"),
    ],
)
def test_bad_files_raise_with_reason(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=reason):
        read_rgb(p)


def test_truncated_files_are_refused_not_half_decoded(tmp_path, rng):
    for ext in (".jpg", ".png"):
        good = save(color_image(rng, 64, 64), tmp_path / f"good{ext}")
        data = good.read_bytes()
        bad = tmp_path / f"trunc{ext}"
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageDecodeError, match="truncated|undecodable"):
            read_rgb(bad)


def test_aspect_aware_resize_center_crops():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 50:150] = 255  # the central square is white
    out = aspect_aware_resize(img, 32)
    assert out.shape == (32, 32, 3)
    assert out.mean() > 250  # only the central (white) part survives the crop
    assert plain_resize(img, 32, 16).shape == (16, 32, 3)
    assert plain_resize(img, 32).mean() == pytest.approx(127.5, abs=3)  # stretched, black margins kept


def test_load_image_sizes(tmp_path, rng):
    p = save(color_image(rng, 60, 30), tmp_path / "x.jpg")
    assert load_image(p, 16).shape == (16, 16, 3)
    assert load_image(p, 16, "plain").shape == (16, 16, 3)
    assert load_image(p, None).shape == (30, 60, 3)
    with pytest.raises(ValueError, match="resize must be one of"):
        load_image(p, 16, "squash")


# ---------------------------------------------------------------- discovery


def test_class_folders(class_folder):
    (class_folder / "red" / "notes.txt").write_text("x")
    (class_folder / "stray.png").write_bytes(b"")
    d = discover(class_folder)
    assert d.layout == "class folders"
    assert d.label_names == ["blue", "green", "red"]
    assert d.class_counts() == {"blue": 10, "green": 10, "red": 10}
    assert any(p.endswith(".JPG") for p in d.paths)  # extensions in any case
    reasons = {s["path"]: s["reason"] for s in d.skipped}
    assert reasons == {"red/notes.txt": "not an image file (.txt)", "stray.png": "not inside a class folder"}
    assert d.labels[d.paths.index("red/red_00.png")] == 2


def test_flat_label_dot_names(flat_folder):
    (flat_folder / "nolabel.jpg").write_bytes(b"x")
    d = discover(flat_folder)
    assert d.layout == "label.N file names" and d.label_names == ["cat", "dog"]
    assert d.class_counts() == {"cat": 8, "dog": 8}
    assert d.skipped == [{"path": "nolabel.jpg", "reason": "no label in the file name (expected 'label.N.ext')"}]


def test_csv_layout(tmp_path, rng):
    save(color_image(rng), tmp_path / "imgs" / "a.png")
    save(color_image(rng), tmp_path / "imgs" / "b.png")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\nimgs/a.png,yes\nimgs/b.png,no\nimgs/missing.png,no\n")
    d = discover(csv)
    assert d.layout == "csv" and d.paths == ["imgs/a.png", "imgs/b.png"] and d.label_strings == ["yes", "no"]
    assert d.skipped == [{"path": "imgs/missing.png", "reason": "listed in the CSV but missing"}]
    csv.write_text("imgs/a.png\n")
    with pytest.raises(FeatxError, match="expected 'path,label'"):
        discover(csv)


def test_preset_split_folders(tmp_path, rng):
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        for c in ("x", "y"):
            for i in range(n):
                save(color_image(rng), tmp_path / "ds" / split / c / f"{i}.png")
    d = discover(tmp_path / "ds")
    assert d.layout.startswith("train/val/test folders")
    assert {k: len(v) for k, v in d.splits.items()} == {"train": 8, "val": 4, "test": 6}
    assert all(d.paths[i].startswith("val/") for i in d.splits["val"])


def test_discovery_errors(tmp_path):
    with pytest.raises(FeatxError, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatxError, match="no images found"):
        discover(tmp_path / "empty").require_classes()
    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(FeatxError, match="not a CSV"):
        discover(tmp_path / "x.h5")


def test_single_class_is_refused(tmp_path, rng):
    for i in range(3):
        save(color_image(rng), tmp_path / "one" / "cats" / f"{i}.png")
    with pytest.raises(FeatxError, match="only 1 class .*'cats'.*at least 2"):
        discover(tmp_path / "one").require_classes(2)


# ---------------------------------------------------------------- splits


def test_split_is_stratified_reproducible_and_disjoint():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    a = stratified_split(labels, val=0.1, test=0.2, seed=7)
    b = stratified_split(labels, val=0.1, test=0.2, seed=7)
    c = stratified_split(labels, val=0.1, test=0.2, seed=8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["test"], c["test"])
    assert [len(a[k]) for k in ("train", "val", "test")] == [70, 10, 20]
    assert sorted(np.concatenate(list(a.values()))) == list(range(100))
    np.testing.assert_array_equal(np.bincount(labels[a["test"]]), [10, 6, 4])  # proportions kept
    assert not np.array_equal(a["train"], np.sort(a["train"]))  # rows come shuffled


def test_split_counts_and_errors():
    labels = np.repeat([0, 1], 20)
    s = stratified_split(labels, val=4, test=6, seed=0)
    assert (len(s["val"]), len(s["test"]), len(s["train"])) == (4, 6, 30)
    assert len(stratified_split(labels, val=0, test=0)["train"]) == 40
    with pytest.raises(FeatxError, match="nothing left to train on"):
        stratified_split(labels, val=20, test=20)
    with pytest.raises(FeatxError, match="fraction below 1 or a whole count"):
        stratified_split(labels, val=2.5, test=0)
    with pytest.raises(FeatxError, match="cannot make a stratified split"):
        stratified_split(np.array([0] * 10 + [1]), val=0, test=0.3)


def test_demo_digits_sort_in_numeric_order_and_old_word_folders_are_refused(tmp_path):
    from featx.data.datasets import write_digits

    out = write_digits(tmp_path / "d", per_class=2, size=8)
    assert discover(out).label_names == [str(d) for d in range(10)]  # 0..9, not eight, five, four...
    (tmp_path / "old" / "eight").mkdir(parents=True)
    with pytest.raises(FeatxError, match="older featx"):
        write_digits(tmp_path / "old", per_class=2, size=8)


def test_rgb_array_is_pillows_pixels_without_the_pad_byte():
    """``rgb_array`` reads Pillow's own 4-byte pixels through its Arrow export (no tobytes): the
    same bytes as ``np.asarray`` for odd sizes, and the ``np.asarray`` fallback for an image kept
    in several memory blocks and for other modes."""
    from featx.data import decode

    rng = np.random.default_rng(7)
    for w, h in [(1, 1), (3, 5), (17, 13), (500, 375)]:
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        assert decode._rgbx_view(img) is not None  # the shared-memory path is the one taken
        out = decode.rgb_array(img)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        assert out.tobytes() == np.asarray(img).tobytes()
        rows = np.zeros((2, h, w, 3), np.uint8)
        slot = rows[1]
        assert decode.rgb_array(img, slot) is slot and slot.tobytes() == out.tobytes()  # written in place
        assert not rows[0].any()
    big = Image.new("RGB", (4200, 4100), (3, 200, 77))  # larger than one of Pillow's 16 MiB blocks
    assert decode._rgbx_view(big) is None
    assert decode.rgb_array(big).tobytes() == np.asarray(big).tobytes()
    gray = Image.fromarray(rng.integers(0, 256, (4, 6), dtype=np.uint8))
    assert decode.rgb_array(gray).shape == (4, 6)  # not RGB: np.asarray as before


def test_alpha_on_white_and_gray_are_pillows_bytes():
    """``_to_rgb`` composites RGBA / LA / PA / transparent-palette images on white and turns gray
    into RGB with OpenCV on Pillow's memory: byte for byte what Pillow's ``alpha_composite`` on
    white and ``convert("RGB")`` give, on every pair of channel value and alpha (256 x 256), odd
    sizes, and the row of a slab it is written into."""
    from featx.data import decode

    def pillow(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))

    c, a = np.meshgrid(np.arange(256), np.arange(256))
    every = np.dstack([c, 255 - c, (c * 7) % 256, a]).astype(np.uint8)  # (value, alpha) for each channel
    rng = np.random.default_rng(3)
    odd = rng.integers(0, 256, (13, 17, 4), dtype=np.uint8)
    for arr in (every, odd):
        img = Image.fromarray(arr, "RGBA")
        assert decode._pixel_view(img) is not None  # the OpenCV path is the one taken
        got = decode._to_rgb(img)
        assert got.shape == (*arr.shape[:2], 3) and got.tobytes() == pillow(img).tobytes()
        rows = np.zeros((2, *arr.shape[:2], 3), np.uint8)
        slot = rows[1]
        assert decode._to_rgb(img, slot) is slot and slot.tobytes() == got.tobytes() and not rows[0].any()
    la = Image.fromarray(every[..., [0, 3]], "LA")
    pa = Image.fromarray(odd[..., 0] % 16, "L").convert("P")
    pa.putpalette(rng.integers(0, 256, 48, dtype=np.uint8).tobytes())
    pa.info["transparency"] = bytes(rng.integers(0, 256, 16, dtype=np.uint8))
    for img in (la, pa, Image.fromarray(every, "RGBA").convert("PA")):
        assert decode._to_rgb(img).tobytes() == pillow(img).tobytes(), img.mode
    gray = Image.fromarray(rng.integers(0, 256, (13, 17), dtype=np.uint8), "L")
    assert decode._pixel_view(gray) is not None
    assert decode._to_rgb(gray).tobytes() == np.asarray(gray.convert("RGB")).tobytes()


#: sha256 of load_image_into (32 aspect, 24 plain), load_image (same) and read_rgb (full size) per
#: file of tests/data/decode_reference, computed with featx at 6fc8340 (Pillow decoding every
#: file; before the OpenCV PNG path, the OpenCV alpha and gray conversions). Recompute them with
#: that featx, never with the code under test, if Pillow / OpenCV change.
DECODE_REFERENCE = {
    "gray_large.jpg": "341d575b75c7f808bc4a070f2c1d51f493d314f80ac3081b8a9f49b9bd2df077",
    "gray_small.jpg": "80b919cc2a725241d3aed27494974e172e599f34ea865892f6ff4b3f8b54cd1c",
    "la.png": "af56670b20b5f204ee3170c6e98aa27bfd2dd01506fb8de6d7d4001a49fc6c06",
    "p_trns.png": "d537ad95c9eafd9d51ac0403cbe7de66637b876264e37672dffc2b734a90ea87",
    "rgb_chunks.png": "d5cea097980b7a5e33289bdd876b22ec16dfcf007f630de56f2f8666dc98bc02",
    "rgb_exif6.png": "7798b288a0e42ba7c5ad448333a65f3b0f28905eaf567ceace71b32398e7f187",
    "rgb_large.png": "331b22497c0091bd376ec4643f9fca20baeb93d5050a28033af63c6d60023c76",
    "rgb_text.png": "d5cea097980b7a5e33289bdd876b22ec16dfcf007f630de56f2f8666dc98bc02",
    "rgb_trns.png": "d5cea097980b7a5e33289bdd876b22ec16dfcf007f630de56f2f8666dc98bc02",
    "rgba16.png": "9b5fc60fc1d5a4ed71e54fd062f3c87844ed397be4490972aa8eac6abb43f9bc",
    "rgba_large.png": "004b6290eaab8e6660f7d12ea948a465ccb3db128fc675ae6c532e6fad1cbe8d",
    "rgba_partial.png": "683c520271f8b7a081945275829ab4c2fe09fdf32f9cfe23f34b2acbddc4501f",
}
#: the files the OpenCV PNG path takes (8-bit RGB / RGBA, plain chunks); the others stay Pillow's
OPENCV_PNGS = {"rgb_chunks.png", "rgba_partial.png", "rgb_large.png", "rgba_large.png"}


def test_decoded_pixels_match_pillows_before_the_opencv_paths():
    """PNG kinds OpenCV now decodes (gAMA/sRGB/pHYs chunks, two IDATs, alpha, large enough for
    area resizing) and the kinds left to Pillow (tRNS, text, EXIF orientation, 16-bit, LA,
    transparent palette, gray JPEG at a reduced DCT scale) give featx's earlier bytes."""
    import hashlib

    from featx.data import decode

    folder = Path(__file__).parent / "data" / "decode_reference"
    got, plain = {}, set()
    for p in sorted(folder.iterdir()):
        h = hashlib.sha256()
        for size, mode in ((32, "aspect"), (24, "plain")):
            out = np.zeros((size, size, 3), np.uint8)
            decode.load_image_into(p, out, mode)
            h.update(out.tobytes())
            h.update(decode.load_image(p, size, mode).tobytes())
        full = decode.read_rgb(p)
        h.update(str(full.shape).encode() + full.tobytes())
        got[p.name] = h.hexdigest()
        if p.suffix == ".png" and decode._plain_png(p.read_bytes()):
            plain.add(p.name)
    assert got == DECODE_REFERENCE
    assert plain == OPENCV_PNGS
