"""End to end: the demo pipeline at small sizes, every method and every metric column in the report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.report import COLUMNS


@pytest.mark.slow
@pytest.mark.timeout(600)  # two demo runs in one test: past the 300 s default on a loaded machine
def test_demo_interrupted_then_rerun_continues_and_reports_every_method_and_column(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no cached ImageNet weights: the fallback path
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--per-class", "10", "--epochs", "2", "--extract-size", "32",
            "-m", "minigooglenet", "--batch-size", "35", "--no-progress"]  # one scratch model: each is the same path; 70 training rows = 2 whole batches (no retrace for a short last one)

    # Ctrl-C in the middle of training, once epoch 1 is backed up (build, extract and fit are done)
    backup_end = keras.callbacks.BackupAndRestore.on_epoch_end

    def interrupted(self, epoch, logs=None):
        backup_end(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", interrupted)
        first = CliRunner().invoke(cli, args)
    assert first.exit_code == 130, first.output
    assert "interrupted: what was written is kept" in first.output and "Traceback" not in first.output
    run = out / "runs" / "minigooglenet"
    assert json.loads((run / "history.json").read_text())["epoch"] == [1] and not (run / "model.keras").exists()
    assert not (out / "report").exists()
    finished = [out / "data" / "s40" / f"{s}.h5" for s in ("train", "val", "test")]
    finished += [out / "features" / "train.h5", out / "features" / "test.h5", out / "models" / "resnet50_lr.pkl"]
    mtimes = {p: p.stat().st_mtime_ns for p in finished}

    r = CliRunner().invoke(cli, args)  # the same command again: continues where it stopped
    assert r.exit_code == 0, r.output
    assert {p: p.stat().st_mtime_ns for p in finished} == mtimes, "finished steps are not redone"
    assert r.output.count("is already complete") == 2 and "already fitted" in r.output
    assert "minigooglenet: 2 epochs" in r.output and "resumed after epoch 1" in r.output
    assert json.loads((run / "history.json").read_text())["epoch"] == [1, 2]
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


def test_demo_rejects_bad_options(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path), "--models", "resnet"])
    assert r.exit_code == 2 and "Invalid value for '--models'" in r.output
    r = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path), "--per-class", "3"])
    assert r.exit_code == 2 and "Invalid value for '--per-class'" in r.output
