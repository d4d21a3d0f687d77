"""The shared HDF5 writer and readers: round trips, atomic finish, resume after SIGKILL, batches."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from featx.errors import FeatxError, OutputExistsError
from featx.store import StoreWriter, open_store


def _writer(path, n=23, kind="images", row_shape=(4, 4, 3), dtype=np.uint8, config=None, **kw):
    paths = [f"class{i % 3}/img{i}.jpg" for i in range(n)]
    labels = [i % 3 for i in range(n)]
    return StoreWriter(
        path, kind=kind, row_shape=row_shape, dtype=dtype, paths=paths, labels=labels,
        label_names=["ant", "bee", "cat"], config=config or {"size": 4}, **kw,
    )


def _row(i, shape=(4, 4, 3), dtype=np.uint8):
    return np.full(shape, i % 250, dtype=dtype)


def test_images_round_trip_with_skips_and_mean(tmp_path):
    w = _writer(tmp_path / "a.h5", compute_mean=True, slab_rows=5)
    for i in range(23):
        if i in (3, 17):
            w.skip(i, "undecodable image (test)")
        else:
            w.add(i, _row(i))
    w.finish()
    with open_store(tmp_path / "a.h5", kind="images") as r:
        kept = [i for i in range(23) if i not in (3, 17)]
        assert len(r) == 21 and r.row_shape == (4, 4, 3)
        assert r.data.dtype == np.uint8 and r.data.chunks is not None
        np.testing.assert_array_equal(r.read()[:, 0, 0, 0], kept)
        np.testing.assert_array_equal(r.labels, [i % 3 for i in kept])
        assert r.label_names == ["ant", "bee", "cat"] and all(type(n) is str for n in r.label_names)
        assert r.paths[2] == "class2/img2.jpg" and r.paths[3] == "class1/img4.jpg"
        assert all(type(p) is str for p in r.paths)
        assert r.mean_rgb == pytest.approx([np.mean(kept)] * 3)
        assert r.attrs["kind"] == "images" and r.attrs["complete"] is True
        assert r.config == {"size": 4} and r.attrs["n_skipped"] == 2
        assert {"featx_version", "created"} <= set(r.attrs)
    assert not (tmp_path / "a.h5.partial").exists() and not (tmp_path / "a.h5.partial.json").exists()


def test_write_slab_is_add_and_skip_at_once(tmp_path):
    """``write_slab`` stores what ``add``/``skip`` store (rows, skips, mean, progress per slab), does
    not keep the caller's buffer, takes given channel sums, and refuses slabs that do not add up."""
    a = _writer(tmp_path / "a.h5", compute_mean=True, slab_rows=5)
    for i in range(23):
        a.skip(i, "bad") if i in (3, 17) else a.add(i, _row(i))
    a.finish()
    b = _writer(tmp_path / "b.h5", compute_mean=True)
    buf = np.empty((8, 4, 4, 3), np.uint8)
    b.add(0, _row(0))  # rows fed by add() are written first
    for first in (1, 9, 17):
        n = min(8, 23 - first)
        kept = [i for i in range(first, first + n) if i not in (3, 17)]
        for j, i in enumerate(kept):
            buf[j] = _row(i)
        sums = None if first == 1 else buf[: len(kept)].reshape(-1, 3).sum(axis=0).tolist()
        b.write_slab(first, n, buf[: len(kept)], [(i, "bad") for i in (3, 17) if first <= i < first + n], sums)
        assert json.loads(b.progress_path.read_text())["next_index"] == first + n
        buf[:] = 7  # the writer kept no view of it
    with pytest.raises(ValueError, match="fed in order"):
        b.write_slab(3, 1, buf[:1])
    b.finish()
    with open_store(tmp_path / "a.h5") as x, open_store(tmp_path / "b.h5") as y:
        assert x.read().tobytes() == y.read().tobytes() and x.paths == y.paths and x.mean_rgb == y.mean_rgb
        assert x.attrs["n_skipped"] == y.attrs["n_skipped"] == 2
    c = _writer(tmp_path / "c.h5")
    with pytest.raises(ValueError, match="do not make sources"):
        c.write_slab(0, 3, np.zeros((1, 4, 4, 3), np.uint8), [(1, "bad")])
    c.close()


def test_features_round_trip(tmp_path):
    w = _writer(tmp_path / "f.h5", n=10, kind="features", row_shape=(7,), dtype=np.float32,
                attrs={"backbone": "resnet50", "image_size": 224})
    rows = np.random.default_rng(0).normal(size=(10, 7)).astype(np.float32)
    w.add_batch(0, rows[:6])
    w.add_batch(6, rows[6:])
    w.finish()
    with open_store(tmp_path / "f.h5", kind="features") as r:
        x, y = r.load()
        np.testing.assert_array_equal(x, rows)
        assert x.dtype == np.float32 and r.attrs["backbone"] == "resnet50" and r.attrs["image_size"] == 224
        np.testing.assert_array_equal(y, [i % 3 for i in range(10)])
    with pytest.raises(FeatxError, match="holds features, expected images"):
        open_store(tmp_path / "f.h5", kind="images")


def test_nothing_at_final_path_until_finish(tmp_path):
    w = _writer(tmp_path / "a.h5", slab_rows=4)
    for i in range(10):
        w.add(i, _row(i))
    assert not (tmp_path / "a.h5").exists()
    assert (tmp_path / "a.h5.partial").exists()
    progress = json.loads((tmp_path / "a.h5.partial.json").read_text())
    assert progress["rows"] == 8 and progress["next_index"] == 8  # two slabs of 4 flushed
    with pytest.raises(FeatxError, match="incomplete|does not exist"):
        open_store(tmp_path / "a.h5")
    w.close()


def test_resume_after_close_continues_where_it_stopped(tmp_path):
    w = _writer(tmp_path / "a.h5", slab_rows=4)
    for i in range(10):
        w.add(i, _row(i))
    w.close()  # e.g. KeyboardInterrupt: buffered rows are flushed, the run stays resumable
    w2 = _writer(tmp_path / "a.h5", slab_rows=4)
    assert w2.next_index == 10 and not w2.done
    for i in range(10, 23):
        w2.add(i, _row(i))
    w2.finish()
    with open_store(tmp_path / "a.h5") as r:
        np.testing.assert_array_equal(r.read()[:, 0, 0, 0], np.arange(23))


def test_finished_output_is_kept_or_refused(tmp_path):
    w = _writer(tmp_path / "a.h5")
    for i in range(23):
        w.add(i, _row(i))
    w.finish()
    assert _writer(tmp_path / "a.h5").done  # same parameters: nothing to do
    with pytest.raises(OutputExistsError, match="different parameters.*--overwrite"):
        _writer(tmp_path / "a.h5", config={"size": 5})
    w3 = _writer(tmp_path / "a.h5", config={"size": 5}, overwrite=True)
    assert not w3.done and w3.next_index == 0
    w3.close()


def test_partial_with_other_parameters_is_refused(tmp_path):
    w = _writer(tmp_path / "a.h5", slab_rows=2)
    for i in range(5):
        w.add(i, _row(i))
    w.close()
    with pytest.raises(OutputExistsError, match="unfinished run with different parameters"):
        _writer(tmp_path / "a.h5", config={"size": 99})


def test_all_rows_skipped_is_an_error_and_leaves_nothing(tmp_path):
    w = _writer(tmp_path / "a.h5", n=3)
    for i in range(3):
        w.skip(i, "bad")
    with pytest.raises(FeatxError, match="no usable rows"):
        w.finish()
    assert not list(tmp_path.iterdir())


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from featx.store import StoreWriter
    n, delay = 300, float(sys.argv[2])
    w = StoreWriter(sys.argv[1], kind="images", row_shape=(8, 8, 3), dtype=np.uint8,
                    paths=[f"p{i}.png" for i in range(n)], labels=[i % 2 for i in range(n)],
                    label_names=["a", "b"], config={"k": 1}, compute_mean=True, slab_rows=7)
    print("resumed_from", w.resumed_from, flush=True)
    for i in range(w.next_index, n):
        if i % 11 == 5:
            w.skip(i, "corrupt")
        else:
            w.add(i, np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8))
        time.sleep(delay)
    w.finish()
    """
)


def _contents(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        out = {k: f[k][:] for k in f}
        out["attrs"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items() if k != "created"}
    return out


def test_sigkilled_writer_resumes_to_identical_content(tmp_path):
    script = tmp_path / "w.py"
    script.write_text(WRITER_SCRIPT)
    clean, killed = tmp_path / "clean.h5", tmp_path / "killed.h5"
    subprocess.run([sys.executable, str(script), str(clean), "0"], check=True, timeout=120)

    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.01"])
    progress = Path(str(killed) + ".partial.json")
    deadline = time.time() + 60
    while time.time() < deadline:
        if progress.exists() and json.loads(progress.read_text() or "{}").get("rows", 0) >= 40:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and Path(str(killed) + ".partial").exists()
    rows_before = json.loads(progress.read_text())["rows"]
    assert 40 <= rows_before < 270

    rerun = subprocess.run([sys.executable, "-W", "error", str(script), str(killed), "0"], check=True, timeout=120,
                           capture_output=True, text=True)
    resumed = int(rerun.stdout.split("resumed_from")[1].split()[0])
    assert resumed >= rows_before > 0  # it continued, it did not start over
    a, b = _contents(clean), _contents(killed)
    assert a.keys() == b.keys()
    for k in a:
        if k == "attrs":
            assert a[k] == b[k]
        else:
            np.testing.assert_array_equal(a[k], b[k])
    assert len(a["images"]) == 300 - len([i for i in range(300) if i % 11 == 5])


@pytest.fixture
def store(tmp_path):
    w = _writer(tmp_path / "s.h5", n=23)
    for i in range(23):
        w.add(i, _row(i))
    w.finish()
    with open_store(tmp_path / "s.h5") as r:
        yield r


def test_batches_in_order_keep_last_partial_batch(store):
    batches = list(store.iter_batches(5))
    assert [len(x) for x, _ in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([x[:, 0, 0, 0] for x, _ in batches]), np.arange(23))
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), store.labels)


def test_shuffled_batches_cover_every_row_once_and_are_seeded(store):
    def order(seed):
        batches = list(store.iter_batches(4, shuffle=True, seed=seed, block_rows=6))
        assert [len(x) for x, _ in batches] == [4, 4, 4, 4, 4, 3]
        xs = np.concatenate([x[:, 0, 0, 0] for x, _ in batches])
        ys = np.concatenate([y for _, y in batches])
        np.testing.assert_array_equal(ys, xs % 3)  # labels travel with their rows
        return xs

    a, b, c = order(1), order(1), order(2)
    assert sorted(a) == list(range(23))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, np.arange(23))


def test_tf_dataset_reshuffles_every_epoch(store):
    ds = store.tf_dataset(8, shuffle=True, seed=3, block_rows=5)
    epochs = [np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in ds]) for _ in range(2)]
    assert all(sorted(e) == list(range(23)) for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])
    x, y = next(iter(ds))
    assert x.dtype.name == "uint8" and y.dtype.name == "int64" and x.shape[1:] == (4, 4, 3)


def test_reader_errors(tmp_path):
    with pytest.raises(FeatxError, match="does not exist"):
        open_store(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(FeatxError, match="not a readable HDF5"):
        open_store(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(FeatxError, match="not a featx file"):
        open_store(tmp_path / "other.h5")


def test_feature_settings_reads_new_and_old_files(tmp_path):
    from featx.store import feature_settings

    settings = {"name": "resnet50", "weights": "imagenet", "image_size": 224, "preprocessing": "caffe",
                "dim": 2048, "resize": "aspect"}
    new = _writer(tmp_path / "new.h5", n=3, kind="features", row_shape=(2,), dtype=np.float32,
                  config={"backbone": settings})
    new.add_batch(0, np.zeros((3, 2), np.float32))
    new.finish()
    with open_store(tmp_path / "new.h5") as r:
        assert feature_settings(r.attrs) == settings
    # featx 0.1: a JSON copy in 'backbone_settings' (resize missing in the oldest files)
    old = {"backbone": "vgg16", "backbone_settings": json.dumps({**settings, "name": "vgg16", "resize": None}),
           "config": json.dumps({"backbone": "not a dict"})}
    assert feature_settings(old)["name"] == "vgg16" and feature_settings(old)["dim"] == 2048
    # separate attrs only (bytes as h5py may return them)
    oldest = {"backbone": b"mobilenetv2", "weights": "none", "image_size": np.int64(32), "preprocessing": "tf"}
    assert feature_settings(oldest) == {"name": "mobilenetv2", "weights": "none", "image_size": 32,
                                        "preprocessing": "tf", "resize": None}
    assert feature_settings({"config": "{}"}) == {}


def _tamper(path: Path, name: str, data) -> None:
    with h5py.File(path, "r+") as f:
        dtype = f[name].dtype if name in f else None
        del f[name]
        f.create_dataset(name, data=data, dtype=dtype)


@pytest.mark.parametrize("kind", ["images", "features"])
def test_inconsistent_files_are_refused_when_opened(tmp_path, kind):
    """One check where a store is opened: row counts, label range, shapes: every command gets one line."""
    shape, dtype = ((4, 4, 3), np.uint8) if kind == "images" else ((5,), np.float32)
    good = tmp_path / "good.h5"
    w = _writer(good, n=9, kind=kind, row_shape=shape, dtype=dtype)
    w.add_batch(0, np.stack([_row(i, shape, dtype) for i in range(9)]))
    w.finish()
    with open_store(good, kind=kind) as r:
        assert len(r) == 9 and len(r.labels) == 9 and len(r.paths) == 9
    cases = {
        "labels": (np.arange(7) % 3, r"'\w+' has 9 rows but 'labels' has 7"),
        "paths": (np.array(["a.jpg"] * 8, dtype=object), r"has 9 rows but 'paths' has 8 rows"),
        "label_names": (np.array(["ant", "bee"], dtype=object), r"'labels' go up to 2 but 'label_names' has 2 names"),
    }
    for name, (data, message) in cases.items():
        bad = tmp_path / f"bad_{name}.h5"
        bad.write_bytes(good.read_bytes())
        _tamper(bad, name, data)
        with pytest.raises(FeatxError, match=message) as e:
            open_store(bad, kind=kind)
        assert "\n" not in str(e.value) and "rewrite it with the command that made it" in str(e.value)
    flat = tmp_path / "flat.h5"
    flat.write_bytes(good.read_bytes())
    with h5py.File(flat, "r+") as f:
        x = f[kind][:]
        del f[kind]
        f[kind] = x.reshape(9, -1)[:, :2] if kind == "images" else x[:, :, None]
    with pytest.raises(FeatxError, match=f"dataset '{kind}' must be"):
        open_store(flat, kind=kind)


def _open_files(name: str) -> list:
    """HDF5 file ids this process still holds open on a file called ``name``."""
    return [i for i in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE) if Path(i.name.decode()).name == name]


def test_writer_opens_hdf5_without_chunk_cache_and_closes_it_on_a_write_error(tmp_path, monkeypatch):
    """What stops the disk-full segfault (exit 139 inside libhdf5): no chunk cache, so a failed write
    leaves no dirty chunk, and the file closed at once on the error; the v108 format bound keeps a
    SIGKILLed partial reopenable. Checked on the file access properties libhdf5 itself reports."""
    import errno

    def check(f: h5py.File) -> None:
        fapl = f.id.get_access_plist()
        assert fapl.get_cache()[2] == 0  # rdcc_nbytes: no raw-data chunk cache
        assert fapl.get_libver_bounds() == (h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_V18)

    kw = dict(kind="features", row_shape=(4,), dtype=np.float32, paths=[f"r{i}" for i in range(6)],
              labels=[0, 1] * 3, label_names=["a", "b"], config={}, slab_rows=2)
    w = StoreWriter(tmp_path / "f.h5", **kw)
    check(w._file)
    w.add_batch(0, np.ones((2, 4), np.float32))
    w.close()
    w = StoreWriter(tmp_path / "f.h5", **kw)  # resumed: the same properties on the reopened partial
    assert w.next_index == 2
    check(w._file)
    real = h5py.Dataset.__setitem__

    def full(self, key, value):
        raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28)")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    held = w._file["features"]  # as a traceback frame may hold it: dropping the File would not close
    with pytest.raises(FeatxError, match=r"f\.h5\.partial: \[Errno 28\] No space left on device"):
        w.add_batch(2, np.ones((2, 4), np.float32))
    assert _open_files("f.h5.partial") == [] and not held.id.valid  # closed at the error, not left for later
    del held
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real)
    w.close()  # nothing left to flush or close
    with StoreWriter(tmp_path / "f.h5", **kw) as w:  # space again: resumes after the durable slab
        assert w.next_index == 2
        w.add_batch(2, np.full((4, 4), 2, np.float32))
        w.finish()
    assert _open_files("f.h5.partial") == [] and _open_files("f.h5") == []
    with open_store(tmp_path / "f.h5") as r:
        np.testing.assert_array_equal(r.data[:, 0], [1, 1, 2, 2, 2, 2])


def test_source_key_changes_with_every_part_of_the_content():
    """The fingerprint that decides "already complete" and "resume": any change of sources, labels,
    class names or content-defining config must change it (else a rerun reuses a wrong file)."""
    from featx.store.writer import source_key

    base = source_key(["a", "b"], [0, 1], ["x", "y"], {"k": 1, "j": [2]})
    assert base == source_key(["a", "b"], [0, 1], ["x", "y"], {"j": [2], "k": 1})  # key order is not content
    others = [
        (["a", "c"], [0, 1], ["x", "y"], {"k": 1, "j": [2]}),
        (["ab", ""], [0, 1], ["x", "y"], {"k": 1, "j": [2]}),  # the same characters, other paths
        (["a", "b"], [1, 0], ["x", "y"], {"k": 1, "j": [2]}),
        (["a", "b"], [0, 1], ["x", "z"], {"k": 1, "j": [2]}),  # a class renamed
        (["a", "b"], [0, 1], ["y", "x"], {"k": 1, "j": [2]}),
        (["a", "b"], [0, 1], ["x", "y"], {"k": 2, "j": [2]}),
        (["a", "b"], [0, 1], ["x", "y"], {"k": 1, "j": [2], "seed": 0}),
    ]
    keys = [source_key(*o) for o in others]
    assert base not in keys and len(set(keys)) == len(keys)
    # paths that are not valid UTF-8 (surrogate escapes) hash too
    assert source_key(["\udcff"], [0], ["x"], {}) != source_key(["\udcfe"], [0], ["x"], {})


def test_a_finished_file_with_other_class_names_is_not_reused(tmp_path):
    kw = dict(kind="features", row_shape=(2,), dtype=np.float32, paths=["a", "b"], labels=[0, 1], config={})
    with StoreWriter(tmp_path / "f.h5", label_names=["cat", "dog"], **kw) as w:
        w.add_batch(0, np.zeros((2, 2), np.float32))
        w.finish()
    assert StoreWriter(tmp_path / "f.h5", label_names=["cat", "dog"], **kw).done
    with pytest.raises(OutputExistsError, match="different parameters or sources"):
        StoreWriter(tmp_path / "f.h5", label_names=["dog", "cat"], **kw)
