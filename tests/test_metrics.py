"""``featx.results.metrics``: rank-k over every row, the score record, the metrics JSON schema.

Small hand-made matrices whose answers are counted by hand (no TensorFlow): these are the tests
``scripts/mutation.py metrics`` runs against every mutant of the module.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from featx.errors import FeatxError
from featx.results.metrics import SCHEMA, make_metrics, rank_k, read_metrics, score, write_metrics

# 4 rows, 6 classes; the true class is at rank 1, 3, 6 and 2
Y = np.array([0, 2, 5, 1])
P = np.array([
    [0.50, 0.10, 0.10, 0.10, 0.10, 0.10],
    [0.30, 0.25, 0.20, 0.10, 0.10, 0.05],
    [0.30, 0.20, 0.20, 0.15, 0.10, 0.05],
    [0.40, 0.35, 0.10, 0.05, 0.05, 0.05],
])


def test_rank_k_counts_every_row_by_hand():
    assert rank_k(Y, P, 1) == pytest.approx(1 / 4)
    assert rank_k(Y, P, 2) == pytest.approx(2 / 4)
    assert rank_k(Y, P, 3) == pytest.approx(3 / 4)
    assert rank_k(Y, P, 5) == pytest.approx(3 / 4)  # the true class of row 2 is last of 6
    assert rank_k(Y.tolist(), P.tolist(), 1) == pytest.approx(1 / 4)  # lists are fine


def test_rank_k_when_k_reaches_the_classes():
    # rank-5 with 5 classes or fewer would be trivially 1.0: None ("n/a" in the report)
    p5 = P[:, :5] / P[:, :5].sum(axis=1, keepdims=True)
    assert rank_k(np.array([0, 2, 4, 1]), p5, 5) is None
    assert rank_k(Y, P, 6) is None and rank_k(Y, P, 7) is None
    assert rank_k(Y, P, 5, n_classes=5) is None  # n_classes given wins over the matrix width
    assert rank_k([0, 1], np.eye(2), 2) is None  # rank-2 of 2 classes: trivial too
    assert rank_k([0, 0], np.ones((2, 1)), 1) == 1.0  # one class: rank-1 is 1.0, not None


def test_rank_k_binary_uses_the_positive_class_column():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    assert rank_k(y, p, 1) == pytest.approx(3 / 5)  # rows 0, 1, 4


def test_rank_k_counts_classes_absent_from_the_labels():
    # class 3 of 4 never occurs in y: the top-k is still taken over all 4 columns
    y = np.array([0, 1, 2])
    p = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.6, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1]])
    assert rank_k(y, p, 1) == pytest.approx(1 / 3)
    assert rank_k(y, p, 2) == pytest.approx(1 / 3)
    assert rank_k(y, p, 3) == pytest.approx(2 / 3)


def test_score_record():
    names = [f"c{i}" for i in range(6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # classes never predicted score 0, without sklearn's warning
        s = score(Y, P, names)
    assert s["rank1"] == pytest.approx(0.25) and s["rank5"] == pytest.approx(0.75)
    cm = np.array(s["confusion_matrix"])
    assert cm.shape == (6, 6) and cm.sum() == 4
    assert cm[0, 0] == 1 and cm[2, 0] == 1 and cm[5, 0] == 1 and cm[1, 0] == 1  # everything predicted c0
    rep = s["classification_report"]
    assert set(names) <= set(rep) and rep["c0"]["recall"] == 1.0 and rep["c0"]["precision"] == 0.25
    assert rep["c3"]["support"] == 0 and rep["c3"]["precision"] == 0.0  # no zero-division warning, 0
    text = {line.split()[0]: line.split()[1:] for line in s["classification_report_text"].splitlines() if line.strip()}
    assert text["c0"] == ["0.2500", "1.0000", "0.4000", "1"]  # precision, recall, f1, support; 4 digits
    assert text["c3"] == ["0.0000", "0.0000", "0.0000", "0"]
    three = score(np.array([0, 1, 2]), np.eye(3), ["a", "b", "c"])
    assert three["rank1"] == 1.0 and three["rank5"] is None


@pytest.mark.parametrize("proba, n", [(np.ones((4, 5)), 6), (np.ones((3, 6)), 6), (np.ones(4), 6)])
def test_score_refuses_a_matrix_of_the_wrong_shape(proba, n):
    with pytest.raises(ValueError, match=r"expected probabilities of shape \(4, 6\)"):
        score(Y, proba, [f"c{i}" for i in range(n)])


def test_metrics_record_round_trips_and_checks_its_schema(tmp_path):
    from featx import __version__

    rec = make_metrics(method="m", kind="scratch", model={"name": "x"}, data={"rows": 4},
                       single_crop={"rank1": 0.25, "rank5": None}, warnings=("w",))
    assert rec["schema"] == SCHEMA and rec["kind"] == "scratch" and rec["warnings"] == ["w"]
    assert rec["ten_crop"] is None and rec["config"] == {} and rec["train_seconds"] is None
    # the schema's keys, exactly (featx report reads them by name)
    assert list(rec) == ["schema", "featx_version", "created", "method", "kind", "model", "data", "single_crop",
                         "ten_crop", "train_seconds", "classification_report", "confusion_matrix", "history",
                         "warnings", "config"]
    full = make_metrics(method="lr", kind="transfer", model={"params": 9}, data={"rows": 2}, single_crop={"rank1": 1.0},
                        ten_crop={"rank1": 0.5}, train_seconds=3.5, classification_report={"a": {}},
                        confusion_matrix=[[1]], history="h.json", warnings=["x"], config={"c": 1})
    assert {k: v for k, v in full.items() if k != "created"} == {
        "schema": SCHEMA, "featx_version": __version__, "method": "lr", "kind": "transfer", "model": {"params": 9},
        "data": {"rows": 2}, "single_crop": {"rank1": 1.0}, "ten_crop": {"rank1": 0.5}, "train_seconds": 3.5,
        "classification_report": {"a": {}}, "confusion_matrix": [[1]], "history": "h.json", "warnings": ["x"],
        "config": {"c": 1}}
    assert rec["created"].endswith("+00:00")
    path = tmp_path / "m.json"
    assert write_metrics(path, rec) == str(path)
    assert read_metrics(path) == json.loads(path.read_text()) == rec
    with pytest.raises(ValueError, match=r"kind must be .*transfer.*scratch.* Received: 'other'"):
        make_metrics(method="m", kind="other", model={}, data={}, single_crop={})
    (tmp_path / "other.json").write_text(json.dumps({"schema": "someone/1"}))
    with pytest.raises(FeatxError, match="is not a featx metrics file"):
        read_metrics(tmp_path / "other.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(FeatxError, match="is not a featx metrics file"):
        read_metrics(tmp_path / "list.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FeatxError, match="cannot read metrics"):
        read_metrics(tmp_path / "bad.json")
    with pytest.raises(FeatxError, match="cannot read metrics"):
        read_metrics(tmp_path / "missing.json")
