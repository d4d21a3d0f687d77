"""End to end: the demo pipeline at small sizes, every method and every metric column in the report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.report import COLUMNS


@pytest.mark.slow
def test_demo_end_to_end_reports_every_method_and_column(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no cached ImageNet weights: the fallback path
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--per-class", "10", "--epochs", "1", "--extract-size", "32",
            "-m", "minigooglenet", "--batch-size", "32", "--no-progress"]  # one scratch model: each is the same path
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "RANDOM-INIT weights" in r.output and "NOT pretrained" in r.output  # loud, in the output
    assert f"report: {out / 'report' / 'report.html'}" in r.output

    rep = json.loads((out / "report" / "report.json").read_text())
    methods = [row["method"] for row in rep["table"]]
    assert sorted(methods) == sorted(["resnet50 features + LR", "minigooglenet"])
    assert rep["columns"] == [k for k, _ in COLUMNS]
    for row in rep["table"]:
        assert set(row) == {k for k, _ in COLUMNS}
        assert row["rank1"].endswith("%") and row["rank5"].endswith("%")  # 10 classes: rank-5 applies
        r1, r5 = float(row["rank1"][:-1]), float(row["rank5"][:-1])
        assert 0.0 <= r1 <= r5 <= 100.0, row  # a percentage, and rank-5 never below rank-1
        assert row["train_time"].endswith(("s", "min")) and row["params"][0].isdigit()
        if row["method"] == "resnet50 features + LR":
            assert row["rank1_10crop"].startswith("n/a")
        else:
            assert row["rank1_10crop"].endswith("%") and row["rank5_10crop"].endswith("%")
    assert any("untrained backbone" in w or "NOT pretrained" in w for w in rep["warnings"])  # and in the report
    html = (out / "report" / "report.html").read_text()
    assert "WARNING" in html and html.count("data:image/png;base64,") == 3

    # rerunning keeps every finished step
    r2 = CliRunner().invoke(cli, args)
    assert r2.exit_code == 0, r2.output
    assert "kept" in r2.output and "already fitted" in r2.output


def test_demo_rejects_bad_options(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path), "--models", "resnet"])
    assert r.exit_code == 2 and "Invalid value for '--models'" in r.output
    r = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path), "--per-class", "3"])
    assert r.exit_code == 2 and "Invalid value for '--per-class'" in r.output
