"""Shard planning, the plan file, validation and the merge, without TensorFlow: shard files are
written here with the store writer (rows of known values), so the merged file can be checked row
by row. These are the tests ``scripts/mutation.py shards`` runs against every mutant."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from featx.errors import FeatxError
from featx.extract import plan_shards
from featx.extract import shards as shardlib
from featx.extract.sources import Shard, Source, default_shard_rows
from featx.store import StoreWriter, open_store

N, DIM = 11, 3
CONFIG = {"backbone": {"name": "synthetic"}, "batch_size": 2}


def _source(n: int = N) -> Source:
    return Source("folder", "/src", [f"c{i % 2}/{i}.png" for i in range(n)], [i % 2 for i in range(n)],
                  ["c0", "c1"], files=[f"/src/c{i % 2}/{i}.png" for i in range(n)])


def _row(i: int) -> np.ndarray:
    return np.full(DIM, float(i), np.float32) + np.arange(DIM, dtype=np.float32) / 10


def _write_shard(out, source: Source, shard: Shard, skip=(), config=CONFIG) -> None:
    """Shard ``shard`` as the local runner writes it: rows of the sub-table, skips by local index."""
    t = source.rows(shard.start, shard.stop)
    with StoreWriter(shardlib.shard_path(out, shard), kind="features", row_shape=(DIM,), dtype=np.float32,
                     paths=t.paths, labels=t.labels, label_names=t.label_names,
                     config=shardlib.shard_config(config, shard), slab_rows=2) as w:
        for i in range(shard.rows):
            if shard.start + i in skip:
                w.skip(i, f"bad {shard.start + i}")
            else:
                w.add(i, _row(shard.start + i))
        w.finish(attrs={"skipped": w.skipped, "n_skipped": len(w.skipped)}, allow_empty=True)


def test_plan_covers_every_row_once_in_order():
    assert plan_shards(11, 4) == [Shard(0, 0, 4), Shard(1, 4, 8), Shard(2, 8, 11)]
    assert plan_shards(8, 4) == [Shard(0, 0, 4), Shard(1, 4, 8)]
    assert plan_shards(3, 10) == [Shard(0, 0, 3)] and plan_shards(0, 4) == []
    assert plan_shards(5, 1)[-1] == Shard(4, 4, 5)
    for n, k in ((1, 1), (7, 3), (100, 7)):
        rows = [r for s in plan_shards(n, k) for r in range(s.start, s.stop)]
        assert rows == list(range(n)) and all(s.rows <= k for s in plan_shards(n, k))
    with pytest.raises(ValueError, match="shard_rows must be >= 1"):
        plan_shards(5, 0)
    assert Shard(3, 6, 9).rows == 3 and Shard(3, 6, 9).name == "00003"


def test_default_shard_rows():
    from featx.extract.sources import MAX_SHARD_ROWS, MIN_SHARD_ROWS, SHARD_SECONDS

    # about SHARD_SECONDS of one worker's work at its rate (15 images/s on a CPU at 224 px)
    assert default_shard_rows(10**6, workers=1, gpu=False, image_size=224) == 15 * SHARD_SECONDS
    assert default_shard_rows(10**6, workers=1, gpu=False, image_size=112) == 4 * 15 * SHARD_SECONDS
    assert default_shard_rows(10**9, workers=1, gpu=True, image_size=224) == 2000 * SHARD_SECONDS
    # at least two shards per worker when the rows allow it
    assert default_shard_rows(4000, workers=4, gpu=False, image_size=224) == 500
    assert default_shard_rows(4001, workers=4, gpu=False, image_size=224) == 501
    # and within bounds
    assert default_shard_rows(10, workers=4, gpu=False, image_size=224) == MIN_SHARD_ROWS
    assert default_shard_rows(0, workers=0, gpu=False, image_size=224) == MIN_SHARD_ROWS
    assert default_shard_rows(10**12, workers=1, gpu=True, image_size=8) == MAX_SHARD_ROWS


def test_shard_files_and_config(tmp_path):
    out = tmp_path / "f.h5"
    s = Shard(2, 8, 11)
    assert shardlib.shard_dir(out) == tmp_path / "f.h5.shards"
    assert shardlib.shard_path(out, s) == tmp_path / "f.h5.shards" / "00002.h5"
    assert shardlib.shard_config(CONFIG, s) == {**CONFIG, "shard": [8, 11]}
    assert shardlib.shard_config(CONFIG, s) != shardlib.shard_config(CONFIG, Shard(2, 8, 12))


def test_prepare_keeps_the_plan_of_the_same_run_and_refuses_another(tmp_path):
    out = tmp_path / "f.h5"
    assert shardlib.read_plan(out) is None
    assert shardlib.prepare(out, "key1", N, None, default=4, overwrite=False) == 4
    assert shardlib.read_plan(out) == {"source_key": "key1", "rows": N, "shard_rows": 4}
    # a rerun without --shard-rows finds the same shards, whatever the default is now
    assert shardlib.prepare(out, "key1", N, None, default=7, overwrite=False) == 4
    assert shardlib.prepare(out, "key1", N, 4, default=7, overwrite=False) == 4
    with pytest.raises(FeatxError, match="shard_rows=4; rerun with that shard size"):
        shardlib.prepare(out, "key1", N, 5, default=7, overwrite=False)
    with pytest.raises(FeatxError, match="unfinished run with other parameters"):
        shardlib.prepare(out, "key2", N, None, default=4, overwrite=False)
    with pytest.raises(FeatxError, match="unfinished run with other parameters"):
        shardlib.prepare(out, "key1", N + 1, None, default=4, overwrite=False)
    (shardlib.shard_dir(out) / "00000.h5").write_bytes(b"old shard")
    assert shardlib.prepare(out, "key2", N, 5, default=4, overwrite=True) == 5  # overwrite starts over
    assert sorted(p.name for p in shardlib.shard_dir(out).iterdir()) == ["plan.json"]
    assert shardlib.read_plan(out)["source_key"] == "key2"
    # a shard folder without a plan (killed before it was written) is started over
    (shardlib.shard_dir(out) / "plan.json").unlink()
    (shardlib.shard_dir(out) / "00001.h5").write_bytes(b"stray")
    assert shardlib.prepare(out, "key3", N, None, default=6, overwrite=False) == 6
    assert sorted(p.name for p in shardlib.shard_dir(out).iterdir()) == ["plan.json"]


def test_finished_and_validated_shards_merge_into_the_rows_in_source_order(tmp_path):
    out, source = tmp_path / "f.h5", _source()
    plan = plan_shards(N, 4)
    skip = {1, 4, 5, 6, 7, 10}  # shard 1 holds no row at all
    for s in plan:
        assert not shardlib.is_finished(out, source, CONFIG, s)
        _write_shard(out, source, s, skip)
        assert shardlib.is_finished(out, source, CONFIG, s)
    assert not shardlib.is_finished(out, source, {**CONFIG, "batch_size": 3}, plan[0])  # another run's
    seen = []
    path = shardlib.merge(out, source, CONFIG, plan, dim=DIM, attrs={"source": "/src"},
                          finish_attrs=lambda skips: seen.extend(skips) or {"skipped": skips})
    assert path == out and not shardlib.shard_dir(out).exists()
    keep = [i for i in range(N) if i not in skip]
    assert [(s["index"], s["reason"], s["stage"]) for s in seen] == [(i, f"bad {i}", "decode") for i in sorted(skip)]
    with open_store(out, kind="features") as f:
        np.testing.assert_array_equal(f.data[:], np.stack([_row(i) for i in keep]))
        assert f.paths == [source.paths[i] for i in keep]
        assert f.labels.tolist() == [source.labels[i] for i in keep] and f.label_names == ["c0", "c1"]
        assert f.attrs["source"] == "/src" and f.config == CONFIG
    with h5py.File(out) as f:
        assert [s["index"] for s in json.loads(f.attrs["skipped"])] == sorted(skip)
        # the file a single-process run would write: same content key
        assert f.attrs["source_key"] == shardlib.run_key(source, CONFIG)


def test_merge_with_no_skips_copies_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(shardlib, "MERGE_ROWS", 2)  # several copies per shard
    out, source = tmp_path / "f.h5", _source()
    plan = plan_shards(N, 5)
    for s in plan:
        _write_shard(out, source, s)
    shardlib.merge(out, source, CONFIG, plan, dim=DIM, attrs={}, finish_attrs=lambda skips: {"skipped": skips})
    with open_store(out, kind="features") as f:
        np.testing.assert_array_equal(f.data[:], np.stack([_row(i) for i in range(N)]))
        assert f.paths == source.paths


def test_merge_refuses_missing_foreign_incomplete_or_short_shards(tmp_path):
    out, source = tmp_path / "f.h5", _source()
    plan = plan_shards(N, 4)
    for s in plan[:2]:
        _write_shard(out, source, s)
    with pytest.raises(FeatxError, match=r"shard 00002.h5 of .* is missing \(rows 8-10\); rerun"):
        shardlib.merge(out, source, CONFIG, plan, dim=DIM, attrs={}, finish_attrs=lambda s: {})
    assert not out.exists()
    # another run's shard (other config)
    t = source.rows(8, 11)
    with StoreWriter(shardlib.shard_path(out, plan[2]), kind="features", row_shape=(DIM,), dtype=np.float32,
                     paths=t.paths, labels=t.labels, label_names=t.label_names,
                     config=shardlib.shard_config({**CONFIG, "batch_size": 9}, plan[2])) as w:
        w.add_batch(0, np.stack([_row(i) for i in range(8, 11)]))
        w.finish()
    with pytest.raises(FeatxError, match=r"shard .*00002.h5 is incomplete or from another run"):
        shardlib.validate(out, source, CONFIG, plan, DIM)
    shardlib.shard_path(out, plan[2]).unlink()
    _write_shard(out, source, plan[2])
    shardlib.validate(out, source, CONFIG, plan, DIM)  # all good now
    with pytest.raises(FeatxError, match=r"holds \(4, 3\) features for 4 sources .*expected 5-d rows"):
        shardlib.validate(out, source, CONFIG, plan, 5)
    # a complete shard of this run whose rows were cut short
    with h5py.File(shardlib.shard_path(out, plan[1]), "r+") as f:
        f["features"].resize(3, axis=0)
    with pytest.raises(FeatxError, match=r"shard .*00001.h5 holds \(3, 3\) features for 4 sources with 0 skipped"):
        shardlib.validate(out, source, CONFIG, plan, DIM)
    # an unfinished shard (complete flag off) is not finished
    with h5py.File(shardlib.shard_path(out, plan[0]), "r+") as f:
        f.attrs["complete"] = False
    assert not shardlib.is_finished(out, source, CONFIG, plan[0])
    shardlib.shard_path(out, plan[0]).write_bytes(b"not hdf5")
    assert not shardlib.is_finished(out, source, CONFIG, plan[0])


def test_interrupted_merge_resumes_and_an_existing_output_is_kept(tmp_path, monkeypatch):
    from featx.errors import OutputExistsError

    monkeypatch.setattr(shardlib, "MERGE_ROWS", 2)  # progress is durable every 2 rows
    out, source = tmp_path / "new" / "f.h5", _source()
    assert shardlib.prepare(out, "k", N, 4, default=4, overwrite=False) == 4  # makes new/f.h5.shards
    plan = plan_shards(N, 4)
    for s in plan:
        _write_shard(out, source, s, skip={2})
    real, calls = shardlib._copy_shard, []

    def dies_in_the_third_shard(writer, f, shard, first):
        calls.append((shard.index, first))
        if shard.index == 2 and len(calls) == 3:
            raise OSError("the machine went down")
        real(writer, f, shard, first)

    monkeypatch.setattr(shardlib, "_copy_shard", dies_in_the_third_shard)
    with pytest.raises(OSError, match="went down"):
        shardlib.merge(out, source, CONFIG, plan, dim=DIM, attrs={}, finish_attrs=lambda s: {"skipped": s})
    assert not out.exists() and shardlib.shard_dir(out).exists()  # the shards stay until the merge is whole
    calls.clear()
    shardlib.merge(out, source, CONFIG, plan, dim=DIM, attrs={}, finish_attrs=lambda s: {"skipped": s})
    assert calls[0] == (2, 8)  # resumed in shard 2: shards 0 and 1 are not copied again
    keep = [i for i in range(N) if i != 2]
    with open_store(out, kind="features") as f:
        assert f.data.dtype == np.float32
        np.testing.assert_array_equal(f.data[:], np.stack([_row(i) for i in keep]))
    # a finished output of another run is never replaced without overwrite
    other = {**CONFIG, "batch_size": 5}
    for s in plan:
        _write_shard(out, source, s, config=other)
    with pytest.raises(OutputExistsError, match="pass --overwrite to replace it"):
        shardlib.merge(out, source, other, plan, dim=DIM, attrs={}, finish_attrs=lambda s: {})
    shardlib.merge(out, source, other, plan, dim=DIM, attrs={}, finish_attrs=lambda s: {}, overwrite=True)
    with open_store(out, kind="features") as f:
        assert len(f) == N and f.config == other


def test_a_shard_file_without_the_complete_flag_is_not_finished(tmp_path):
    out, source = tmp_path / "f.h5", _source()
    s = plan_shards(N, 4)[0]
    _write_shard(out, source, s)
    with h5py.File(shardlib.shard_path(out, s), "r+") as f:
        del f.attrs["complete"]
    assert not shardlib.is_finished(out, source, CONFIG, s)
