"""``featx report`` on metrics records written with featx.results.metrics (synthetic, hand-checkable)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.report import cells, gather, make_report
from featx.results.metrics import make_metrics, rank_k, score, write_metrics


def test_rank_k_matches_hand_computed_values():
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.35, 0.25], [0.2, 0.3, 0.5]])
    y = np.array([0, 1, 1, 2])
    assert rank_k(y, proba, 1) == pytest.approx(2 / 4)  # rows 0 and 3 right
    assert rank_k(y, proba, 2) == pytest.approx(4 / 4)  # row 1: 0.2 is 2nd; row 2: 0.35 is 2nd
    assert rank_k(y, proba, 5) is None  # 3 classes: rank-5 does not apply
    s = score(y, proba, ["a", "b", "c"])
    assert s["confusion_matrix"] == [[1, 0, 0], [1, 0, 1], [0, 0, 1]]  # rows: true class
    assert s["classification_report"]["a"]["recall"] == 1.0 and s["classification_report"]["b"]["recall"] == 0.0
    with pytest.raises(ValueError, match="expected probabilities of shape"):
        score(y, proba[:, :2], ["a", "b", "c"])


def _records(tmp_path):
    names = [f"c{i}" for i in range(10)]
    (tmp_path / "run").mkdir(parents=True)
    (tmp_path / "run" / "history.json").write_text(
        json.dumps({"loss": [2.0, 1.0], "val_loss": [2.1, 1.4], "accuracy": [0.3, 0.6], "val_accuracy": [0.3, 0.5]})
    )
    cm = np.eye(10, dtype=int).tolist()
    fit = make_metrics(
        method="resnet50 features + LR", kind="transfer",
        model={"name": "logreg", "params": 20490, "size_bytes": 2048, "path": "/m/clf.pkl"},
        data={"rows": 40, "label_names": names},
        single_crop={"rank1": 0.9, "rank5": 1.0, "seconds": 0.1, "images_per_second": 400.0},
        train_seconds=3.0, confusion_matrix=cm, warnings=["features are NOT pretrained"],
    )
    write_metrics(tmp_path / "clf.metrics.json", fit)
    ev = dict(fit, single_crop={"rank1": 0.8, "rank5": 0.95, "seconds": 0.1, "images_per_second": 300.0})
    write_metrics(tmp_path / "clf.eval.json", ev)  # the evaluation replaces fit's own split
    scratch = make_metrics(
        method="minigooglenet", kind="scratch",
        model={"name": "minigooglenet", "params": 1656250, "size_bytes": 20_000_000, "path": "/runs/mini"},
        data={"rows": 40, "label_names": names},
        single_crop={"rank1": 0.5, "rank5": 0.9, "seconds": 1.0, "images_per_second": 40.0},
        ten_crop={"rank1": 0.55, "rank5": 0.92, "seconds": 8.0, "images_per_second": 5.0},
        train_seconds=90.0, confusion_matrix=cm, history="history.json",
    )
    write_metrics(tmp_path / "run" / "eval.json", scratch)


def test_report_table_plots_and_files(tmp_path):
    _records(tmp_path)
    res = make_report([tmp_path], tmp_path / "rep")
    assert [r["method"] for r in res.table] == ["resnet50 features + LR", "minigooglenet"]
    lr, mini = res.table
    assert lr["rank1"] == "80.00%" and lr["rank1_10crop"] == "n/a: features (no crops)"
    assert mini["rank1_10crop"] == "55.00%" and mini["rank5_10crop"] == "92.00%"
    assert mini["train_time"] == "1.5 min" and mini["params"] == "1,656,250" and mini["size"] == "19.1 MB"
    assert res.best == "resnet50 features + LR"
    assert res.warnings == ["resnet50 features + LR: features are NOT pretrained"]
    for name in ("report.md", "report.html", "report.json", "accuracy.png", "curves.png", "confusion.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0, name
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "WARNING" in page
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| Rank-1 (10-crop) |" in md and "![Accuracy per method](accuracy.png)" in md
    js = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert js["columns"][0] == "method" and len(js["records"]) == 2


def test_cells_never_show_zero_for_missing_values():
    rec = make_metrics(method="m", kind="scratch", model={}, data={"label_names": ["a", "b"]},
                       single_crop={"rank1": 0.75, "rank5": None})
    c = cells(rec)
    assert c["rank5"] == "n/a: 2 classes" and c["rank1_10crop"] == "n/a: not run (--ten-crop)"
    assert c["params"] == c["size"] == c["train_time"] == "n/a: not recorded"


def test_report_errors_and_cli(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatxError, match="no metrics found"):
        gather([tmp_path / "empty"])
    (tmp_path / "bad.metrics.json").write_text("{}")
    with pytest.raises(FeatxError, match="not a featx metrics file"):
        gather([tmp_path / "bad.metrics.json"])
    _records(tmp_path / "ok")
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "ok"), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "best: resnet50 features + LR" in r.output and "report.html" in r.output
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "no metrics found" in r.output and "Traceback" not in r.output
