"""Sharded extraction without Ray: shards, resume of unfinished shards only, merge, lock, reuse, no-Ray message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.extract import extract, open_source, plan_shards
from featx.extract import shards as shardlib
from tests import _extract_fixtures as _fx
from tests._scale_helpers import FailAt, assert_same_file, shard_state

model_path, folder, reference = _fx.model_path, _fx.folder, _fx.reference  # shared module-scoped fixtures

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_interrupted_sharded_run_redoes_only_unfinished_shards(folder, model_path, reference, tmp_path):
    out = tmp_path / "f.h5"
    kw = dict(backbone=f"keras:{model_path}", batch_size=2, slab_rows=2, shard_rows=4, progress=False)
    with pytest.raises(RuntimeError, match="stop at row"):
        extract(folder, out, on_batch=FailAt(9), **kw)  # dies in shard 2 (rows 8-11), after rows 8-9
    state = shard_state(out)
    assert sorted(state) == ["00000", "00001", "00002"] and state["00002"] == "partial"
    assert not out.exists() and not Path(str(out) + ".partial").exists()

    # a merge refuses a missing shard instead of reading fill values
    source = open_source(folder)
    with h5py.File(shardlib.shard_path(out, plan_shards(16, 4)[0])) as f:
        config = {k: v for k, v in json.loads(f.attrs["config"]).items() if k != "shard"}
    with pytest.raises(FeatxError, match=r"shard 00002.h5 of .* is missing \(rows 8-11\)"):
        shardlib.validate(out, source, config, plan_shards(16, 4), dim=6)

    r = extract(folder, out, **{**kw, "shard_rows": None})  # the plan is kept: no --shard-rows needed
    assert r.shards == 4 and r.shards_run == [2, 3] and r.processed == 2 + 4  # shard 2 resumed at its row 2
    assert "4 shards (2 already done)" in r.summary()
    assert not shardlib.shard_dir(out).exists()
    # allclose, not equal: oneDNN's sums differ in the last bits when a resumed shard's batches
    # are cut at other rows than the reference's (1.9e-9 on 2 of 90 values with TensorFlow 2.21)
    assert_same_file(reference, out)
    with h5py.File(out) as f:
        skipped = json.loads(f.attrs["skipped"])
        timing = json.loads(f.attrs["extract_timing"])
    assert [(s["path"], s["stage"], s["index"]) for s in skipped] == [("cat/cat_9.png", "decode", 10)]
    assert timing["images"] == 6 and timing["device"] == "CPU" and timing["backbone_params"] == 142
    assert timing["seconds"] > 0 and timing["images_per_second"] == pytest.approx(6 / timing["seconds"], rel=0.01)
    # readers cannot tell the files apart: a local run on the merged output has nothing to do
    again = extract(folder, out, backbone=f"keras:{model_path}", batch_size=5, progress=False)
    assert again.reused and again.rows == 15 and [s["path"] for s in again.skipped] == ["cat/cat_9.png"]


def test_finished_output_returns_without_loading_tensorflow(folder, tmp_path):
    out = tmp_path / "m.h5"
    kw = dict(backbone="mobilenetv2", weights="none", image_size=32, batch_size=8, progress=False)
    first = extract(folder, out, **kw)
    assert not first.reused and json.loads(h5py.File(out)["/"].attrs["extract_timing"])["backbone_params"] > 2e6
    script = textwrap.dedent(f"""
        import sys
        from featx.extract import extract
        r = extract({str(folder)!r}, {str(out)!r}, backbone="mobilenetv2", weights="none", image_size=32,
                    batch_size=8, progress=False)
        print(r.reused, r.rows, "tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "15", "False", "False"]


def test_second_run_on_a_busy_output_refuses_and_the_first_finishes_whole(folder, model_path, reference, tmp_path):
    out = tmp_path / "busy.h5"
    go = tmp_path / "go"  # the first run holds at its first batch until the second runs were refused
    script = textwrap.dedent(f"""
        from featx.extract import extract
        from tests._scale_helpers import WaitFor
        extract({str(folder)!r}, {str(out)!r}, backbone="keras:{model_path}", batch_size=2, slab_rows=2,
                progress=False, on_batch=WaitFor({str(go)!r}))
    """)
    first = subprocess.Popen([sys.executable, "-c", script], env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not Path(str(out) + ".partial.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, "first run did not start"
            time.sleep(0.05)
        for engine in ("local", "ray"):
            second = CliRunner().invoke(cli, ["extract", str(folder), "-o", str(out), "-b", f"keras:{model_path}",
                                              "--engine", engine, "--no-progress"])
            assert second.exit_code == 1, second.output
            lines = second.output.strip().splitlines()
            assert len(lines) == 1 and f"in use by another featx run (pid {first.pid} on host" in lines[0]
            assert not out.exists() and Path(str(out) + ".partial").exists()  # the first run's files are untouched
        assert first.poll() is None, "the first run ended before the second runs were refused"
        go.touch()
        assert first.wait(timeout=120) == 0, first.stderr.read()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert_same_file(reference, out)


def test_engine_ray_without_ray_installed_says_how_to_install(folder, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None  # import ray -> ImportError\n")
    env = {**ENV, "PYTHONPATH": f"{shim}{os.pathsep}{REPO}"}
    out = tmp_path / "r.h5"
    proc = subprocess.run([sys.executable, "-m", "featx", "extract", str(folder), "-o", str(out), "--engine", "ray",
                           "-w", "none"], env=env, capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stdout + proc.stderr
    assert 'pip install "featx[ray]"' in lines[0] and not out.exists()


def test_config_is_validated_once_and_shards_are_contiguous():
    from featx.extract import ExtractConfig, Shard
    from featx.extract.sources import default_shard_rows

    c = ExtractConfig(backbone="ResNet50", weights=" None")
    assert (c.weights, c.image_size) == ("none", 224)  # normalised once, from the registry: nothing built
    settings, built = c.backbone_settings("images")
    assert built is None and settings["dim"] == 2048 and settings["resize"] == "stored" and settings["seed"] == 0
    for kw, msg in [({"engine": "spark"}, "engine must be one of local, ray. Received: engine='spark'"),
                    ({"address": "auto"}, "address applies to engine='ray'"),
                    ({"workers": 0}, "workers must be >= 1"),
                    ({"image_size": 16}, "resnet50 needs an image size of at least 32px"),
                    ({"weights": "/no/such.h5"}, "is not 'imagenet', 'none' or an existing file")]:
        with pytest.raises(FeatxError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            ExtractConfig(**kw)
    assert plan_shards(10, 4) == [Shard(0, 0, 4), Shard(1, 4, 8), Shard(2, 8, 10)]
    assert plan_shards(0, 4) == [] and Shard(7, 0, 1).name == "00007"
    assert default_shard_rows(1_000_000, gpu=False, image_size=224) == 2700  # ~3 minutes at ~15 img/s
    assert default_shard_rows(100, workers=2) == 64 and default_shard_rows(10**8, gpu=True) == 360_000


def test_a_backbone_that_cannot_be_built_leaves_nothing_behind(folder, tmp_path, monkeypatch):
    from featx.backbones import backbone as bbmod
    from featx.errors import WeightsUnavailableError

    def offline(*a, **k):
        raise WeightsUnavailableError("ImageNet weights for resnet50 are not in the Keras cache (test)")

    monkeypatch.setattr(bbmod, "build_backbone", offline)
    out = tmp_path / "w.h5"
    with pytest.raises(WeightsUnavailableError):
        extract(folder, out, backbone="resnet50", image_size=32, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5.lock"]  # no partial: a retry with other weights works
