"""The thread loader (no TensorFlow) and the tf.data reader give the same rows, skips and pixels."""

from __future__ import annotations

import numpy as np
import pytest

from featx.data.loader import iter_image_batches, iter_store_batches, prefetched
from featx.extract.reader import image_dataset, resolve_decoder, store_dataset
from tests.conftest import color_image, save


def _files(class_folder, tmp_path):
    files = sorted(str(p) for p in class_folder.rglob("*") if p.is_file())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files.insert(3, str(bad))
    return files


def _collect(batches):
    idx, imgs, reasons, sizes = [], [], [], []
    for i, x, r in batches:
        idx.append(np.asarray(i))
        imgs.append(np.asarray(x))
        reasons += [v.decode() if isinstance(v, bytes) else str(v) for v in (r.numpy() if hasattr(r, "numpy") else r)]
        sizes.append(len(np.asarray(i)))
    return np.concatenate(idx), np.concatenate(imgs), reasons, sizes


@pytest.mark.parametrize("resize", ["aspect", "plain"])
def test_threads_equal_tfdata_rows_skips_and_pixels(class_folder, tmp_path, resize):
    files = _files(class_folder, tmp_path)
    kw = dict(size=16, batch_size=7, resize=resize, start=2)
    a = _collect(image_dataset(files, decoder="threads", **kw))
    b = _collect(image_dataset(files, decoder="tfdata", **kw))
    np.testing.assert_array_equal(a[0], np.arange(2, len(files)))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].dtype == np.uint8 and a[1].shape == (len(files) - 2, 16, 16, 3)
    assert a[2] == b[2] and a[3] == b[3] == [7, 7, 7, 7, 1]
    assert a[2][1] and not any(a[2][:1] + a[2][2:])  # the broken file (index 3) and only it
    assert not a[1][1].any()  # its slot is blank


def test_threads_loader_is_reiterable_and_stops_early(class_folder, tmp_path):
    files = _files(class_folder, tmp_path)
    ds = image_dataset(files, size=8, batch_size=4, decoder="threads", workers=2)
    first = next(iter(ds))
    assert first[0].tolist() == [0, 1, 2, 3] and first[1].shape == (4, 8, 8, 3)
    assert len(list(ds)) == 8  # 31 files: a new pass each time
    assert list(iter_image_batches(files, size=8, batch_size=4, start=len(files))) == []


def test_store_batches_equal_tfdata(tmp_path, class_folder):
    from featx.build import build

    build(class_folder, tmp_path / "data", size=12, val=0.0, test=0.0, progress=False, workers=1)
    path = str(tmp_path / "data" / "train.h5")
    a = _collect(iter_store_batches(path, batch_size=8, start=3, stop=20, offset=1))
    b = _collect(store_dataset(path, batch_size=8, start=3, stop=20, offset=1))
    np.testing.assert_array_equal(a[0], np.arange(2, 19))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_prefetched_reraises_and_decoder_choice():
    def boom():
        yield 1
        raise RuntimeError("disk gone")

    it = prefetched(boom())
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="disk gone"):
        next(it)
    assert resolve_decoder("auto") == "tfdata"  # this suite runs on TensorFlow
    with pytest.raises(ValueError, match="decoder must be one of"):
        resolve_decoder("magic")


def test_decode_into_slabs_hands_over_slabs_in_order_and_the_decoded_part_on_failure(tmp_path, rng):
    """Slabs come in source order with the skipped files left out and listed, exact channel sums,
    and the buffer's rows equal to ``load_image``; a failure inside a slab first hands over the
    rows decoded in order before it, then propagates; an error raised by ``emit`` propagates
    without a second hand-over."""
    from featx.data import decode
    from featx.data.decode import load_image
    from featx.data.pool import decode_into_slabs

    paths = [str(save(color_image(rng, w=20 + i, h=14, tint=i), tmp_path / f"{i:02d}.png")) for i in range(11)]
    (tmp_path / "05.png").write_bytes(b"")  # skipped inside the second slab
    got = []

    def emit(first, n, rows, skips, sums):
        got.append((first, n, rows.copy(), skips, sums))

    assert decode_into_slabs(paths, emit, size=12, start=1, workers=2, rows=4, sums=True) == 10
    assert [(f, n) for f, n, *_ in got] == [(1, 4), (5, 4), (9, 2)]
    assert got[1][3] == [(5, "empty file (0 bytes)")] and len(got[1][2]) == 3
    rows = np.concatenate([g[2] for g in got])
    want = np.stack([load_image(p, 12) for i, p in enumerate(paths) if i not in (0, 5)])
    assert rows.tobytes() == want.tobytes()
    assert [sum(g[4][c] for g in got) for c in range(3)] == want.reshape(-1, 3).sum(axis=0, dtype=np.int64).tolist()

    real, calls = decode.read_rgb, []

    def failing(path, **kw):
        calls.append(path)
        if path == paths[6]:
            raise KeyboardInterrupt
        return real(path, **kw)

    got.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(decode, "read_rgb", failing)
        with pytest.raises(KeyboardInterrupt):
            decode_into_slabs(paths, emit, size=12, workers=1, rows=8)
    assert [(f, n, len(r), k) for f, n, r, k, _ in got] == [(0, 6, 5, [(5, "empty file (0 bytes)")])]  # 6 failed
    assert got[0][2].tobytes() == np.stack([load_image(p, 12) for p in paths[:5]]).tobytes()

    def full(first, n, rows, skips, sums):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        decode_into_slabs(paths, full, size=12, workers=2, rows=4)
