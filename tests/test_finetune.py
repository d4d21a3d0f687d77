"""featx finetune: LP-FT on a transfer task made here, the folded head, frozen BatchNorm and blocks,
SIGKILL + --resume, refusals, and the run folder read by evaluate / report / extract.

The transfer task: a 6-class synthetic problem; ``featx train`` fits a tiny CNN (with BatchNorm) on
classes 0-2 (the source), and that network, as ``keras:PATH``, is probed and fine-tuned on classes
3-5 (the target), stored at 20 px (the network resizes to the backbone's 16 px, as extract does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from tests._scratch_helpers import TINY, register_tiny

ROOT = Path(__file__).resolve().parents[1]
TARGET = ["t0", "t1", "t2"]


def _invoke(args, catch=False):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=catch)


def _store(path, x, y, names):
    from featx.store import StoreWriter

    with StoreWriter(path, kind="images", row_shape=x.shape[1:], dtype=np.uint8,
                     paths=[f"syn/{i:05d}.png" for i in range(len(x))], labels=y, label_names=names,
                     config={"synthetic": True}, compute_mean=True, overwrite=True) as w:
        w.add_batch(0, x)
        w.finish()
    return str(path)


def _split(n, size, classes, seed):
    from featx.data.synthetic import synthetic_images

    x, y = synthetic_images(n, size, 6, seed=seed)
    keep = np.isin(y, classes)
    return x[keep], (y[keep] - classes[0]).astype(np.int64)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """Source network, target stores, probe (features + LR) and one LP-FT run with --unfreeze 1."""
    register_tiny()
    d = tmp_path_factory.mktemp("ft")
    s = {"dir": d}
    s["src_train"] = _store(d / "src_train.h5", *_split(144, 20, [0, 1, 2], 0), ["s0", "s1", "s2"])
    for split, n, size, seed in (("train", 120, 20, 1), ("val", 72, 20, 2), ("test", 60, 24, 3)):
        s[split] = _store(d / f"{split}.h5", *_split(n, size, [3, 4, 5], seed), TARGET)
    src = d / "src"
    r = _invoke(["train", TINY, "--train", s["src_train"], "-o", src, "--input-size", 16, "--epochs", 1,
                 "--batch-size", 16, "--no-progress", "--keep", "last", "--tensorboard", d / "tb_train"])
    assert r.exit_code == 0, r.output
    s["src_model"] = src / "model.keras"
    s["spec"] = f"keras:{s['src_model']}"
    for split in ("train", "val"):
        r = _invoke(["extract", s[split], "-o", d / f"f_{split}.h5", "--backbone", s["spec"], "--no-progress"])
        assert r.exit_code == 0, r.output
    r = _invoke(["fit", d / "f_train.h5", "--test", d / "f_val.h5", "-o", d / "clf.pkl"])
    assert r.exit_code == 0, r.output
    s["clf"] = d / "clf.pkl"
    s["run"] = d / "lpft"
    s["tb"] = d / "tb"
    s["out"] = _invoke(["finetune", s["spec"], "--train", s["train"], "--val", s["val"], "-o", s["run"],
                        "--head", s["clf"], "--epochs", 1, "--batch-size", 16, "--lr", 3e-3, "--unfreeze", 1,
                        "--tensorboard", s["tb"], "--checkpoint-every", 1, "--no-progress"])
    return s


def _conf(run):
    return json.loads((Path(run) / "config.json").read_text())


def _probe_val_accuracy(task):
    from featx.fit import load_classifier
    from featx.store import open_store

    est, _ = load_classifier(task["clf"])
    with open_store(task["dir"] / "f_val.h5") as r:
        x, y = r.load()
    return float((est.predict(x) == y).mean()), est, x


@pytest.mark.slow
def test_lpft_run_starts_at_the_probe_and_never_scores_below_it(task):
    out = task["out"]
    assert out.exit_code == 0, out.output
    run = task["run"]
    for name in ("model.keras", "history.json", "curves.png", "config.json", "checkpoints/start.weights.h5"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()
    conf = _conf(run)
    assert conf["schema"] == "featx.train/1" and conf["kind"] == "finetune" and conf["status"] == "finished"
    assert [p["phase"] for p in conf["phases"]] == ["head", "finetune"] and conf["head_epochs"] == 0
    assert conf["phases"][1]["optim"]["optimizer"] == "adamw" and conf["phases"][1]["optim"]["warmup"] == 0.1
    assert conf["head_check"]["max_abs_diff"] < 1e-4 and conf["probe"]["seconds"] > 0
    probe_acc, _, _ = _probe_val_accuracy(task)
    # before any step the network scores exactly what the probe scores on the same images
    assert conf["start"]["val_accuracy"] == pytest.approx(probe_acc, abs=1e-6)
    hist = json.loads((run / "history.json").read_text())
    assert hist["epoch"] == [1] and 0 <= hist["lr"][0] <= 3e-3 + 1e-9
    kept = conf["kept_epoch"]
    kept_acc = conf["start"]["val_accuracy"] if kept == 0 else hist["val_accuracy"][kept - 1]
    assert kept_acc >= probe_acc - 1e-9
    # the saved network scores the kept accuracy on the validation images (raw 0..255 RGB in)
    import keras

    from featx.store import open_store

    model = keras.saving.load_model(run / "model.keras")
    with open_store(task["val"]) as r:
        x, y = r.load()
    acc = float((model.predict(x.astype(np.float32), verbose=0).argmax(1) == y).mean())
    assert acc == pytest.approx(kept_acc, abs=1e-6) and acc >= probe_acc
    # TensorBoard: epoch summaries of the run (and of the featx train run that made the backbone)
    assert list((task["tb"] / "train").glob("events.out.tfevents.*")) and (task["tb"] / "validation").is_dir()
    assert list((task["dir"] / "tb_train" / "train").glob("events.out.tfevents.*"))
    assert _conf(task["dir"] / "src")["tensorboard"] == str((task["dir"] / "tb_train").resolve())


def test_folded_head_network_equals_the_classifier_before_training(task):
    """The network featx finetune starts from, built with the public API, against featx extract + the classifier."""
    from featx.backbones import build_backbone
    from featx.finetune import build_network
    from featx.fit import dense_head
    from featx.store import open_store

    _, est, feats = _probe_val_accuracy(task)
    bb = build_backbone(task["spec"])
    net = build_network(bb, 3, input_size=20, head=dense_head(est, 3))
    with open_store(task["val"]) as r:
        x = r.read(0, len(r)).astype(np.float32)
    p_net = np.asarray(net.model(x, training=False))
    p_clf = est.predict_proba(feats)
    assert np.abs(p_net - p_clf).max() < 1e-4
    assert 0.34 < p_clf.max(axis=1).mean() < 0.999  # not saturated: the comparison means something


@pytest.mark.slow
def test_batchnorm_statistics_and_frozen_blocks_unchanged(task):
    """--unfreeze 1 on a keras: backbone trains its last layer with weights (conv2) and the head;
    conv1 and every BatchNorm weight (moving statistics included) stay as the source network had them."""
    import keras

    assert task["out"].exit_code == 0, task["out"].output
    src = keras.saving.load_model(task["src_model"])
    ft = keras.saving.load_model(task["run"] / "checkpoints" / "epoch_001.keras")  # the last epoch, whichever is kept
    base = next(layer for layer in ft.layers if hasattr(layer, "layers"))
    conf = _conf(task["run"])
    assert conf["unfrozen_blocks"] == ["conv2"] and conf["batchnorm_layers"] == 1

    def same(name):
        return all(np.array_equal(a, b) for a, b in zip(src.get_layer(name).get_weights(),
                                                        base.get_layer(name).get_weights(), strict=True))

    assert same("bn1") and same("conv1")  # moving_mean/variance, gamma/beta; the frozen block
    assert not same("conv2")  # the unfrozen block trained
    trainable = {w.path.split("/")[-2] for w in ft.trainable_weights}
    assert trainable == {"conv2", "head"}, trainable


@pytest.mark.slow
def test_run_folder_works_with_evaluate_ten_crop_report_and_extract(task, tmp_path):
    assert task["out"].exit_code == 0, task["out"].output
    run = task["run"]
    r = _invoke(["evaluate", run, "--data", task["test"], "--ten-crop", "--no-progress"])
    assert r.exit_code == 0, r.output
    ev = json.loads((run / "eval.json").read_text())
    assert ev["kind"] == "finetune" and ev["ten_crop"]["rank1"] is not None
    assert ev["model"]["trainable_params"] == _conf(run)["trainable_params"] < ev["model"]["params"]
    r = _invoke(["evaluate", task["clf"], "--data", task["dir"] / "f_val.h5"])
    assert r.exit_code == 0, r.output
    r = _invoke(["report", run, task["dir"] / "clf.eval.json", "-o", tmp_path / "rep"])
    assert r.exit_code == 0, r.output
    table = json.loads((tmp_path / "rep" / "report.json").read_text())["table"]
    paths = {row["path"]: row for row in table}
    assert set(paths) == {"linear probe", "fine-tuned"}
    ft = paths["fine-tuned"]
    assert "probe" in ft["train_time"] and "fine-tune" in ft["train_time"] and ft["trainable"] != "n/a: not recorded"
    r = _invoke(["extract", task["test"], "-o", tmp_path / "f.h5", "--backbone", f"keras:{run / 'model.keras'}",
                 "--no-progress"])
    assert r.exit_code == 0, r.output
    from featx.store import open_store

    with open_store(tmp_path / "f.h5") as f:
        assert f.row_shape == (16,) and len(f) == ev["data"]["rows"]  # the backbone's pooled features, cut before the head


def test_head_with_other_backbone_settings_is_refused_in_one_line(task, tmp_path):
    for spec, extra, said in ((f"{task['spec']}:conv2", (), "name"),
                              ("mobilenetv2", ("--weights", "none", "--image-size", 32), "name")):
        r = _invoke(["finetune", spec, *extra, "--train", task["train"], "--val", task["val"], "-o", tmp_path / "x",
                     "--head", task["clf"], "--no-progress"], catch=True)
        assert r.exit_code == 1, r.output
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and "--head" in lines[0] and "other backbone settings" in lines[0] and said in lines[0], r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "x" / "model.keras").exists()


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    from featx.train import OptimConfig, make_schedule

    sched = make_schedule(OptimConfig(optimizer="adamw", lr=1e-3, schedule="cosine", warmup=0.2),
                          steps_per_epoch=5, epochs=2)
    lrs = [float(sched(i)) for i in range(11)]
    assert lrs[0] == 0.0 and lrs[1] == pytest.approx(5e-4) and lrs[2] == pytest.approx(1e-3)  # 2 warmup steps
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False)) and lrs[10] == pytest.approx(0.0, abs=1e-9)
    assert lrs[6] == pytest.approx(5e-4)  # half way through the cosine


def test_config_and_usage_errors():
    from featx.errors import ParameterError
    from featx.finetune import FinetuneConfig

    with pytest.raises(ParameterError) as e:
        FinetuneConfig(backbone="resnet50", train="t.h5", out="o", unfreeze="some")
    assert e.value.param == "unfreeze"
    c = FinetuneConfig(backbone="resnet50", train="t.h5", out="o")
    assert c.head_phase_epochs == 2 and c.total_epochs == 7 and c.unfreeze == "all"
    assert FinetuneConfig(backbone="resnet50", train="t.h5", out="o", head="c.pkl").head_phase_epochs == 0
    r = _invoke(["finetune", "resnet50", "--train", "t.h5", "-o", "o", "--unfreeze", "0"], catch=True)
    assert r.exit_code == 2 and "--unfreeze" in r.output


# ------------------------------------------------------------------------------ kill and resume
_KILLABLE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from featx.train.callbacks import TrainingMonitor
    _end = TrainingMonitor.on_epoch_end
    def slow_end(self, epoch, logs=None):
        _end(self, epoch, logs)
        time.sleep(1.0)  # slow epochs down so that the kill lands mid-run
    TrainingMonitor.on_epoch_end = slow_end
    from featx.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_sigkill_in_phase_2_then_resume_finishes_at_the_right_epoch(task, tmp_path):
    run = tmp_path / "killed"
    args = ["finetune", task["spec"], "--train", task["train"], "--val", task["val"], "-o", run, "--head-epochs", 1,
            "--epochs", 2, "--batch-size", 32, "--lr", 3e-3, "--no-progress"]
    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE.format(root=str(ROOT)))
    meta = run / "backup" / "training_metadata.json"
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 240
        while True:  # a backup of phase 2 (after epoch 2 of 3)
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no phase-2 backup in time"
            try:
                if _conf(run).get("phase") == "finetune" and json.loads(meta.read_text())["epoch"] >= 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    hist = json.loads((run / "history.json").read_text())
    assert 2 <= len(hist["epoch"]) < 3 and not (run / "model.keras").exists()
    again = _invoke(args, catch=True)
    assert again.exit_code == 1 and "--resume" in again.output
    res = _invoke([*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert "resumed after epoch" in res.output
    hist = json.loads((run / "history.json").read_text())
    conf = _conf(run)
    assert hist["epoch"] == [1, 2, 3] and conf["status"] == "finished" and conf["head_epochs"] == 1
    assert conf["phases"][1]["first_epoch"] == 2 and not (run / "backup").exists()
    assert (run / "model.keras").is_file()
