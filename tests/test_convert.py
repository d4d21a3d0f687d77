"""``featx convert``: featx HDF5 <-> Parquet / NumPy, round trips value for value."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from featx.cli import cli  # noqa: E402
from featx.convert import convert  # noqa: E402
from featx.errors import FeatxError  # noqa: E402
from featx.store import feature_settings, open_store  # noqa: E402
from tests._transfer_helpers import separable_features, write_features  # noqa: E402

NAMES = ["cat", "dog", "zebra"]  # zebra has no rows: only the metadata keeps it
SETTINGS = {"name": "convnext_tiny", "weights": "none", "image_size": 32, "preprocessing": "none", "dim": 16, "seed": 0}


@pytest.fixture
def feats(tmp_path):
    X, y = separable_features(n_per_class=15, classes=2, dim=16, seed=3)
    X[0, 0] = np.float32(1e-38)  # values must survive bit for bit
    return write_features(tmp_path / "feats" / "train.h5", X, y, NAMES, backbone=SETTINGS), X, y


def _contents(path):
    with open_store(path, "features") as st:
        X, y = st.load()
        return X, y, st.label_names, st.paths, feature_settings(st.attrs)


def test_parquet_round_trip_is_identical_and_written_in_row_groups(feats, tmp_path):
    h5, X, y = feats
    out = tmp_path / "train.parquet"
    r = convert(h5, out, row_group_rows=7)
    assert (r.rows, r.dim, r.row_groups) == (30, 16, 5)
    pf = pq.ParquetFile(out)
    assert pf.metadata.num_row_groups == 5 and max(pf.metadata.row_group(i).num_rows for i in range(5)) == 7
    schema = pf.schema_arrow
    assert schema.names == ["path", "label", "label_name", "split", "embedding"]
    assert schema.field("embedding").type == pa.list_(pa.float32(), 16) and schema.field("label").type == pa.int32()
    meta = json.loads(schema.metadata[b"featx"])
    assert meta["label_names"] == NAMES and meta["settings"]["name"] == "convnext_tiny" and meta["split"] == "train"
    table = pq.read_table(out)
    np.testing.assert_array_equal(np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), X)
    assert table.column("label_name").to_pylist() == [NAMES[k] for k in y]
    assert set(table.column("split").to_pylist()) == {"train"}  # from the file name featx build uses

    back = tmp_path / "back.h5"
    result = CliRunner().invoke(cli, ["convert", str(out), "-o", str(back), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"wrote 30 x 16 features to {back}" in result.output
    X2, y2, names2, paths2, settings2 = _contents(back)
    X1, y1, names1, paths1, settings1 = _contents(h5)
    assert X2.dtype == np.float32 and X2.tobytes() == X1.tobytes()
    np.testing.assert_array_equal(y2, y1)
    assert (names2, paths2) == (names1, paths1) == (NAMES, paths1)
    assert {k: settings2[k] for k in SETTINGS} == SETTINGS  # fit / predict see the same backbone


def test_npy_round_trip_with_labels_csv(feats, tmp_path):
    h5, X, y = feats
    out = tmp_path / "np" / "emb.npy"
    r = convert(h5, out, split="val", row_group_rows=4)
    assert [p.name for p in r.files] == ["emb.npy", "emb.labels.csv", "emb.featx.json"]
    np.testing.assert_array_equal(np.load(out), X)
    assert np.load(out).dtype == np.float32
    with open(out.with_name("emb.labels.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "label_name", "split"]
    assert [int(r["label"]) for r in rows] == y.tolist() and {r["split"] for r in rows} == {"val"}
    back = convert(out, tmp_path / "back.h5")
    X2, y2, names2, _, settings2 = _contents(back.out)
    assert X2.tobytes() == X.tobytes() and names2 == NAMES and settings2["name"] == "convnext_tiny"
    np.testing.assert_array_equal(y2, y)

    with pytest.raises(FeatxError, match="exists; pass --overwrite"):
        convert(h5, out)
    convert(h5, out, overwrite=True)  # featx's own files are replaced...
    (tmp_path / "np" / "other.npy").write_bytes(b"not featx")
    with pytest.raises(FeatxError, match="not a file featx wrote"):  # ...never someone else's
        convert(h5, tmp_path / "np" / "other.npy", overwrite=True)


def test_external_parquet_goes_through_fit_with_bad_rows_skipped(tmp_path):
    """Embeddings made elsewhere: float64 variable-length lists, string labels, no featx metadata."""
    X, y = separable_features(n_per_class=12, classes=3, dim=8, seed=1)
    emb = [list(map(float, row)) for row in X]
    emb[3] = None          # no embedding
    emb[5] = emb[5][:4]    # wrong length
    emb[7][2] = float("nan")
    names = np.array(["tulip", "rose", "daisy"])[y].tolist()
    src = tmp_path / "clip_retrieval.parquet"
    pq.write_table(pa.table({"image_path": [f"img/{i}.jpg" for i in range(len(y))], "caption_class": names,
                             "split": ["train"] * 30 + ["test"] * 6,
                             "embedding": pa.array(emb, pa.list_(pa.float64()))}), src, row_group_size=10)
    out = tmp_path / "ext.h5"
    r = CliRunner().invoke(cli, ["convert", str(src), "-o", str(out), "--label-column", "caption_class",
                                 "--path-column", "image_path", "--split", "train", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "skipped 3 rows" in r.output
    assert "img/3.jpg: no embedding (null)" in r.output and "img/5.jpg: embedding has 4 values, expected 8" in r.output
    assert "img/7.jpg: NaN or infinite values in the embedding" in r.output
    X2, y2, names2, paths2, settings2 = _contents(out)
    assert names2 == ["daisy", "rose", "tulip"] and settings2 == {}
    keep = [i for i in range(30) if i not in (3, 5, 7)]
    np.testing.assert_array_equal(X2, X[keep].astype(np.float32))
    assert paths2 == [f"img/{i}.jpg" for i in keep]
    clf = tmp_path / "clf.pkl"
    r = CliRunner().invoke(cli, ["fit", str(out), "-o", str(clf), "--test-size", "6", "--jobs", "1", "--cv", "2"])
    assert r.exit_code == 0, r.output
    assert clf.is_file()


def test_bad_conversions_are_one_line_errors(feats, tmp_path):
    h5, _, _ = feats
    runner = CliRunner()
    for args, msg in [
        (["-o", str(tmp_path / "x.csv")], "cannot tell the format"),
        (["-o", str(tmp_path / "x.h5")], "goes between featx HDF5 and Parquet or .npy"),
    ]:
        r = runner.invoke(cli, ["convert", str(h5), *args])
        assert r.exit_code == 1 and msg in r.output and "Traceback" not in r.output
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 garbage")
    r = runner.invoke(cli, ["convert", str(junk), "-o", str(tmp_path / "j.h5")])
    assert r.exit_code == 1 and "is not a readable Parquet file" in r.output
    pq.write_table(pa.table({"label": [0, 1]}), tmp_path / "nolist.parquet")
    r = runner.invoke(cli, ["convert", str(tmp_path / "nolist.parquet"), "-o", str(tmp_path / "n.h5")])
    assert r.exit_code == 1 and "has no column 'embedding'" in r.output
    r = runner.invoke(cli, ["convert", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "m.h5")])
    assert r.exit_code == 2
