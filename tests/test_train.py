"""featx train: learning, run folder contents, killed-run resume, restart from a checkpoint,
schedules, and one-line errors."""

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
from featx.train.optim import OptimConfig, carry_slots, make_optimizer, make_schedule
from tests._scratch_helpers import PLAIN, TINY, make_stores, register_plain, register_tiny

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("stores"), n_train=96)


def _invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def _history(run):
    return json.loads((Path(run) / "history.json").read_text())


def _config(run):
    return json.loads((Path(run) / "config.json").read_text())


def _tiny_args(stores, run, *extra):
    return ["train", TINY, "--train", stores["train"], "--val", stores["val"], "-o", str(run),
            "--input-size", "16", "--batch-size", "16", "--no-progress", *extra]


@pytest.fixture(scope="module")
def tiny_one(stores, tmp_path_factory):
    """tinycnn (with BatchNorm), 2 epochs, one device, default settings (precise BN, keep best): (run, output).

    A scratch model of the registry would prove the same at 10x the time (MiniGoogLeNet: about 30 s
    of tracing on 2 cores); the demo test trains MiniGoogLeNet through the same code.
    """
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    register_tiny()
    run = tmp_path_factory.mktemp("tiny") / "one"
    traced = []
    step = TensorFlowTrainer.train_step

    def counted(self, data):  # runs only while the train step is being traced
        traced.append(1)
        return step(self, data)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(TensorFlowTrainer, "train_step", counted)
        res = _invoke(_tiny_args(stores, run, "--epochs", "2", "--checkpoint-every", "1"))
    res.train_step_traces = len(traced)
    return run, res


def _val_accuracy(run, store, size=16):
    import keras

    from featx.store import open_store

    model = keras.saving.load_model(Path(run) / "model.keras")
    with open_store(store) as r:
        x, y = r.load()
    o = (x.shape[1] - size) // 2
    return float((model.predict(x[:, o:o + size, o:o + size].astype(np.float32), verbose=0).argmax(1) == y).mean())


# ------------------------------------------------------------------------------ learning
def test_two_epochs_fill_the_run_dir(stores, tiny_one):
    import keras

    from featx.store import open_store

    run, res = tiny_one
    assert res.exit_code == 0, res.output
    assert f"trained {TINY}" in res.output and str(run / "model.keras") in res.output
    # the optimizer's slots and the metric's state exist before fit: the step is traced once, not
    # twice (a tf.function that creates variables on its first trace is traced again)
    assert res.train_step_traces == 1
    for name in ("model.keras", "history.json", "curves.png", "config.json", "mean.json",
                 "checkpoints/epoch_001.keras", "checkpoints/epoch_002.keras"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists(), "the BackupAndRestore state is removed when a run finishes"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hist, conf = _history(run), _config(run)
    assert hist["epoch"] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"} <= set(hist)
    assert hist["lr"][0] == pytest.approx(0.01) and hist["lr"][1] == pytest.approx(0.005)  # linear decay
    # 12 steps fit the training data (training-mode accuracy; precise BN makes the saved model follow)
    assert hist["loss"][1] < hist["loss"][0] and hist["accuracy"][1] >= 0.7
    assert conf["status"] == "finished" and conf["model"] == TINY and conf["input_size"] == 16
    assert conf["strategy"] == "one" and conf["replicas"] == 1 and conf["global_batch_size"] == 16
    assert conf["keep"] == "best" and conf["kept_epoch"] in (1, 2) and conf["augment"]["preset"] == "none"
    assert conf["label_names"] == ["class0", "class1", "class2"] and conf["classes"] == 3
    assert conf["train_seconds"] == pytest.approx(sum(hist["seconds"]), rel=1e-3)
    assert conf["params"] > 1_000 and conf["files"]["model_size_bytes"] == (run / "model.keras").stat().st_size
    with open_store(stores["train"]) as r:
        assert conf["mean_rgb"] == pytest.approx(r.mean_rgb)
        assert json.loads((run / "mean.json").read_text())["G"] == pytest.approx(r.mean_rgb[1])
    model = keras.saving.load_model(run / "model.keras")
    assert model.layers[1].name == "mean_subtraction" and model.get_layer("gap").output.shape[-1] == 16
    assert model.count_params() == conf["params"] and getattr(model, "optimizer", None) is None  # inference export


def test_two_epoch_run_learns_well_above_chance(stores, tiny_one):
    import keras

    from featx.store import open_store

    run, res = tiny_one
    assert res.exit_code == 0, res.output
    model = keras.saving.load_model(run / "model.keras")
    with open_store(stores["val"]) as r:
        x, y = r.load()
    probs = model.predict(x[:, 2:18, 2:18].astype(np.float32), verbose=0)  # raw 0..255 RGB in
    acc = float((probs.argmax(1) == y).mean())
    assert acc >= 0.8, f"val accuracy {acc:.2f} is not well above chance (0.33)"


# ------------------------------------------------------------------------------ resume
_KILLABLE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from tests._scratch_helpers import register_tiny
    register_tiny()
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


def _kill_mid_run(tmp_path, run, args, wait_s=180, while_running=None):
    """Start ``featx ARGS`` in a subprocess with slowed epochs; SIGKILL it after its first backup
    (``while_running(proc)`` is called just before the kill, while the run is training)."""
    script = tmp_path / "killable.py"
    script.write_text(_KILLABLE.format(root=str(TESTS.parent)))
    meta = run / "backup" / "training_metadata.json"
    proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + wait_s
        while not meta.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no backup written in time"
            time.sleep(0.05)
        if while_running is not None:
            while_running(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return script


def test_killed_run_resumes_at_the_right_epoch_with_optimizer_state(stores, tmp_path):
    import keras

    register_tiny()
    run = tmp_path / "killed"
    args = _tiny_args(stores, run, "--epochs", "5", "--checkpoint-every", "1", "--optimizer", "adam")

    def second_run_is_refused(proc):  # featx train itself holds its run folder's lock while it trains
        import socket

        r = CliRunner().invoke(cli, [*args, "--overwrite"])
        assert r.exit_code == 1, r.output
        assert "in use by another featx run" in r.output and f"pid {proc.pid} on host {socket.gethostname()}" in r.output

    _kill_mid_run(tmp_path, run, args, while_running=second_run_is_refused)
    done = len(_history(run)["epoch"])
    assert 1 <= done < 5, "the run must be killed mid-way"
    assert not (run / "model.keras").exists()

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1 and "--resume" in again.output and "Traceback" not in again.output

    res = _invoke([*args, "--resume"])
    assert res.exit_code == 0, res.output
    resumed = int(res.output.split("resumed after epoch ")[1].split(",")[0])
    assert resumed in (done, done - 1)  # killed between an epoch's history and its backup: one epoch redone
    hist = _history(run)
    assert hist["epoch"] == [1, 2, 3, 4, 5]
    assert not (run / "backup").exists()
    steps = 6  # ceil(96 / 16)
    last = keras.saving.load_model(run / "checkpoints" / "epoch_005.keras")
    # 5 epochs of steps: the optimizer's step counter came back with the weights
    assert int(last.optimizer.iterations.numpy()) == 5 * steps
    assert _config(run)["status"] == "finished"

    rerun = _invoke(args)
    assert rerun.exit_code == 0 and "already complete" in rerun.output


def test_restart_from_checkpoint_with_new_lr_keeps_earlier_history(stores, tmp_path):
    register_tiny()
    run = tmp_path / "restart"
    first = _invoke(_tiny_args(stores, run, "--epochs", "3", "--checkpoint-every", "1"))
    assert first.exit_code == 0, first.output
    before = _history(run)
    ckpt = run / "checkpoints" / "epoch_002.keras"
    res = _invoke(_tiny_args(stores, run, "--epochs", "4", "--from-checkpoint", str(ckpt), "--initial-epoch", "2",
                             "--lr", "0.001", "--schedule", "constant", "--checkpoint-every", "1"))
    assert res.exit_code == 0, res.output
    assert "from epoch 2" in res.output
    hist = _history(run)
    assert hist["epoch"] == [1, 2, 3, 4]
    assert hist["loss"][:2] == before["loss"][:2], "epochs before the restart are kept"
    assert hist["lr"][2:] == [pytest.approx(0.001)] * 2
    conf = _config(run)
    assert [s["initial_epoch"] for s in conf["segments"]] == [0, 2]
    assert conf["optim"]["lr"] == 0.001 and conf["status"] == "finished"


# ------------------------------------------------------------------------------ distribution
_DIES_AFTER_EPOCH_1 = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from tests._scratch_helpers import register_plain
    register_plain()
    import keras
    _end = keras.callbacks.BackupAndRestore.on_epoch_end
    def end(self, epoch, logs=None):
        _end(self, epoch, logs)
        if epoch == 0 and "--resume" not in sys.argv:
            os.kill(os.getpid(), signal.SIGKILL)  # killed once epoch 1's backup is on disk
    keras.callbacks.BackupAndRestore.on_epoch_end = end
    from featx.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _weights(path):
    import keras

    return keras.saving.load_model(path).get_weights()


@pytest.mark.timeout(600)  # two subprocesses that each start TensorFlow and trace 2 replicas
def test_mirrored_step_equals_one_device_step_and_resumes_after_sigkill(tmp_path):
    """--strategy mirrored over 2 logical CPU devices (subprocesses: the CPU must be split before
    TensorFlow initialises its devices) against one device on the same global batch of 16: the loss
    and the weights after each step equal within 1e-5 (fails when the learning rate is not scaled by
    the replicas or a replica's loss is not reduced over the global batch). The mirrored run is
    killed after epoch 1 and resumed: epoch 2 continues from the restored optimizer state."""
    from featx.store import open_store

    stores = make_stores(tmp_path / "stores", size=16, n_train=16, n_val=8, n_test=8)  # no crop: input 16
    register_plain()
    common = ["--train", stores["train"], "--input-size", "16", "--epochs", "2", "--checkpoint-every", "1",
              "--precise-bn-images", "0", "--seed", "3", "--no-progress"]
    one, two = tmp_path / "one", tmp_path / "mirrored"
    res = _invoke(["train", PLAIN, *common, "-o", str(one), "--batch-size", "16", "--lr", "0.02"])
    assert res.exit_code == 0, res.output
    # per replica: 8 images at lr 0.01; the global batch is 16, the learning rate scaled to 0.02
    args = ["train", PLAIN, *common, "-o", str(two), "--batch-size", "8", "--lr", "0.01"]
    mirrored = [*args, "--strategy", "mirrored", "--cpu-devices", "2"]
    script = tmp_path / "dies.py"
    script.write_text(_DIES_AFTER_EPOCH_1.format(root=str(TESTS.parent)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, str(script), *mirrored], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    assert _history(two)["epoch"] == [1] and not (two / "model.keras").exists()
    # after one step: the same loss and the same weights
    assert _history(two)["loss"][0] == pytest.approx(_history(one)["loss"][0], abs=1e-5)
    w1, w2 = _weights(one / "checkpoints" / "epoch_001.keras"), _weights(two / "checkpoints" / "epoch_001.keras")
    moved = max(float(np.abs(a - b).max()) for a, b in zip(w1, _weights(one / "checkpoints" / "epoch_002.keras"),
                                                           strict=True))
    assert moved > 1e-3, "the second step changed the weights by far more than the tolerance"
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)

    # a resume on one device would change the global batch and the learning rate: refused
    other = CliRunner().invoke(cli, [*args, "--resume"])
    assert other.exit_code == 1 and "differs in: replicas, strategy" in other.output

    p = subprocess.run([sys.executable, str(script), *mirrored, "--resume"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "mirrored, 2 replicas" in p.stdout and "resumed after epoch 1" in p.stdout
    conf = _config(two)
    assert conf["strategy"] == "mirrored" and conf["replicas"] == 2 and conf["global_batch_size"] == 16
    assert conf["devices"] == ["/device:CPU:0", "/device:CPU:1"] and conf["lr_scaled"] == pytest.approx(0.02)
    assert _history(two)["epoch"] == [1, 2] and conf["status"] == "finished"
    # the second step (momentum and schedule from the backup) again equals one device's
    assert _history(two)["loss"] == pytest.approx(_history(one)["loss"], abs=1e-5)
    for a, b in zip(_weights(one / "model.keras"), _weights(two / "model.keras"), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    with open_store(stores["train"]) as r:
        assert len(r) == 16  # one batch per epoch: each epoch is exactly one step


# ------------------------------------------------------------------------------ short budgets
def _train_mode_accuracy(model, x, y):
    """Accuracy of ``model`` with BatchNorm in training mode (batch statistics), dropout off."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return float((np.asarray(model(x, training=True)).argmax(1) == y).mean())


def _bn_input_stats(model, x):
    """Mean and (biased) variance per channel of what ``bn1`` sees for images ``x``, and bn1's moving ones."""
    import keras

    conv = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv1").output)(x, training=False))
    bn = model.get_layer("bn1")
    return (conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2)),
            np.asarray(bn.moving_mean), np.asarray(bn.moving_variance))


def test_precise_bn_sets_the_moving_statistics_to_the_training_images_and_scores_like_training_mode(stores, tmp_path):
    """Precise BN (default): bn1's moving mean is the mean of its input over the (center-cropped)
    training images, its moving variance the mean of the batch variances; the saved model scores
    what the training-mode network scores. Without it (--precise-bn-images 0), 12 steps at momentum
    0.99 leave the moving statistics far from the data."""
    import keras

    from featx.store import open_store

    register_tiny()
    with open_store(stores["train"]) as r:
        x, y = r.load()
    x = x[:, 2:18, 2:18].astype(np.float32)  # the center crop precise BN and the saved model see
    runs = {}
    for name, extra in (("precise", ()), ("lagging", ("--precise-bn-images", "0"))):
        runs[name] = tmp_path / name
        res = _invoke(_tiny_args(stores, runs[name], "--epochs", "2", "--keep", "last", *extra))
        assert res.exit_code == 0, res.output
    model = keras.saving.load_model(runs["precise"] / "model.keras")
    mean, var, moving_mean, moving_var = _bn_input_stats(model, x)
    scale = float(np.abs(mean).max())
    np.testing.assert_allclose(moving_mean, mean, atol=1e-4 * scale, rtol=0)
    assert np.all(moving_var <= var * (1 + 1e-4)) and np.all(moving_var >= 0.8 * var), (moving_var, var)
    saved = float((model.predict(x, verbose=0).argmax(1) == y).mean())
    assert abs(saved - _train_mode_accuracy(model, x, y)) <= 0.05

    lagging = keras.saving.load_model(runs["lagging"] / "model.keras")
    mean, var, moving_mean, moving_var = _bn_input_stats(lagging, x)
    assert float(np.abs(moving_mean - mean).max()) > 0.3 * float(np.abs(mean).max()), (moving_mean, mean)


def _weights_equal(a, b) -> bool:
    import keras

    wa, wb = keras.saving.load_model(a).get_weights(), keras.saving.load_model(b).get_weights()
    return len(wa) == len(wb) and all(np.array_equal(p, q) for p, q in zip(wa, wb, strict=True))


def test_keep_best_saves_the_best_epoch_keep_last_the_last(stores, tmp_path):
    register_tiny()
    opts = ("--epochs", "3", "--lr", "0.1", "--schedule", "constant", "--checkpoint-every", "1")
    best, last = tmp_path / "best", tmp_path / "last"
    assert _invoke(_tiny_args(stores, best, *opts)).exit_code == 0
    assert _invoke(_tiny_args(stores, last, *opts, "--keep", "last")).exit_code == 0
    vals = _history(best)["val_accuracy"]
    kept = _config(best)["kept_epoch"]
    assert kept == 1 + vals.index(max(vals)), "the first epoch with the best val_accuracy (ModelCheckpoint's >)"
    assert _config(best)["keep"] == "best" and _config(best)["kept_by"] == "val_accuracy"
    assert _weights_equal(best / "model.keras", best / "checkpoints" / f"epoch_{kept:03d}.keras")
    assert _val_accuracy(best, stores["val"]) == pytest.approx(max(vals))
    assert _config(last)["kept_epoch"] == 3 and _config(last)["keep"] == "last"
    assert _weights_equal(last / "model.keras", last / "checkpoints" / "epoch_003.keras")


# ------------------------------------------------------------------------------ schedules / optimizers
def test_schedules_poly_step_constant():
    poly = make_schedule(OptimConfig(lr=0.1, schedule="poly"), steps_per_epoch=10, epochs=4)
    assert float(poly(0)) == pytest.approx(0.1) and float(poly(20)) == pytest.approx(0.05)
    assert float(poly(40)) == pytest.approx(0.0, abs=1e-9)
    sq = make_schedule(OptimConfig(lr=0.1, schedule="poly", power=2), steps_per_epoch=10, epochs=4)
    assert float(sq(20)) == pytest.approx(0.025)
    step = make_schedule(OptimConfig(lr=0.1, schedule="step", drops=(2, 3), factor=0.5), steps_per_epoch=10, epochs=4)
    assert [float(step(s)) for s in (0, 19, 21, 31)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    # restarting at epoch 2: steps count from the restart, only later drops remain
    later = make_schedule(OptimConfig(lr=0.1, schedule="step", drops=(2, 3), factor=0.5), steps_per_epoch=10,
                          epochs=4, start_epoch=2)
    assert [float(later(s)) for s in (0, 9, 11)] == pytest.approx([0.1, 0.1, 0.05])
    assert make_schedule(OptimConfig(lr=0.3, schedule="constant"), steps_per_epoch=5, epochs=2) == 0.3
    with pytest.raises(ValueError, match="drop epochs"):
        OptimConfig(schedule="step")
    with pytest.raises(ValueError, match="optimizer"):
        OptimConfig(optimizer="rmsprop")


def test_adamw_and_optimizer_errors_name_parameters():
    import keras

    from featx.errors import ParameterError

    opt = make_optimizer(OptimConfig(optimizer="adamw", weight_decay=0.01, schedule="constant"), steps_per_epoch=2,
                         epochs=1)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.weight_decay == pytest.approx(0.01)
    with pytest.raises(ParameterError) as e:
        OptimConfig(weight_decay=0.1)  # sgd
    assert e.value.param == "weight_decay" and "--" not in str(e.value)


def test_train_config_frozen_validated_and_the_run_state_derives_from_it():
    import dataclasses

    from featx.errors import ParameterError
    from featx.runtime.accel import Accel
    from featx.train import TrainConfig
    from featx.train.config import identity_keys

    cfg = TrainConfig(model="minigooglenet", train="t.h5", out="runs/x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3
    for kw, param in (({"batch_size": 0}, "batch_size"), ({"keep": "first"}, "keep"),
                      ({"label_smoothing": 1.0}, "label_smoothing"), ({"strategy": "multiworker"}, "strategy"),
                      ({"initial_epoch": 2}, "initial_epoch")):
        with pytest.raises(ParameterError) as e:
            TrainConfig(model="m", train="t.h5", out="o", **kw)
        assert e.value.param == param and "--" not in str(e.value)
    assert "keras-team/keras#20585" in str(pytest.raises(ParameterError, TrainConfig, model="m", train="t", out="o",
                                                         strategy="multiworker").value)
    state = cfg.resolve(input_size=32, accel=Accel(False, False, False, 0), strategy="one").to_dict()
    assert "out" not in state and state["input_size"] == 32 and state["strategy"] == "one"
    assert state["train"] == str(Path("t.h5").resolve()) and state["augment"]["preset"] == "none"
    assert state["mixed_precision"] is False and state["keep"] == "best" and state["optim"]["lr"] == 0.01
    keys = identity_keys()
    assert {"model", "epochs", "batch_size", "optim", "augment", "strategy", "keep"} <= set(keys)
    assert not {"out", "xla", "cpu_devices", "checkpoint_every"} & set(keys)  # may change on --resume


def test_carry_slots_copies_momentum_not_step_counter():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
    old = keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(old, "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, batch_size=2, verbose=0)
    new = make_optimizer(OptimConfig(lr=0.001, schedule="constant"), steps_per_epoch=2, epochs=1)
    assert carry_slots(old, new, model.trainable_variables) == 2
    moms = {v.name: v.numpy() for v in old.variables if "momentum" in v.name}
    for v in new.variables:
        if "momentum" in v.name:
            np.testing.assert_array_equal(v.numpy(), moms[v.name])
            assert np.abs(v.numpy()).sum() > 0
    assert int(new.iterations.numpy()) == 0 and float(new.learning_rate.numpy()) == pytest.approx(0.001)


# ------------------------------------------------------------------------------ errors
def test_one_line_errors(stores, tmp_path):
    register_tiny()
    runner = CliRunner()

    def err(args, code=1):
        r = runner.invoke(cli, args)
        assert r.exit_code == code, r.output
        assert "Traceback" not in r.output
        return r.output

    out = err(["train", TINY, "--train", stores["train"], "-o", str(tmp_path / "a"), "--input-size", "32"])
    assert "smaller than the 32px network input" in out and len(out.strip().splitlines()) == 1
    assert out.startswith("Error: --input-size: stored images") and "or pass --input-size 20" in out
    assert "No such option" not in err(["train", "nosuchmodel", "--train", stores["train"], "-o", str(tmp_path)], 2)
    assert "drop epochs" in err(_tiny_args(stores, tmp_path / "b", "--schedule", "step"), 2)
    assert "no run to resume" in err(_tiny_args(stores, tmp_path / "c", "--resume"))
    out = err(_tiny_args(stores, tmp_path / "d", "--initial-epoch", "2"), 2)  # library names, CLI flags
    assert "Invalid value for '--initial-epoch': initial_epoch needs --from-checkpoint" in out
    out = err(_tiny_args(stores, tmp_path / "d", "--strategy", "multiworker"), 2)
    assert "keras-team/keras#20585" in out and "'--strategy'" in out and not (tmp_path / "d").exists()
    other = make_stores(tmp_path / "other", classes=4, n_train=8, n_val=8, n_test=8)
    assert "differ from train labels" in err(["train", TINY, "--train", stores["train"], "--val", other["val"],
                                                 "-o", str(tmp_path / "e"), "--input-size", "16"])
    assert "holds features" in err(["train", TINY, "--train", _features_file(tmp_path), "-o", str(tmp_path / "f")])

    small = _invoke(["train", TINY, "--train", stores["train"], "-o", str(tmp_path / "g"), "--input-size", "8",
                     "--epochs", "1", "--batch-size", "48", "--no-progress"])
    assert small.exit_code == 0
    assert "WARNING: stored images (20x20px) are much larger than the 8px input" in small.output
    assert _config(tmp_path / "g")["warnings"] and _config(tmp_path / "g")["val_rows"] == 0


def test_a_gpu_turns_mixed_precision_and_xla_on_then_changed_parameters_refused(stores, tmp_path, one_gpu):
    """With a GPU counted (faked: the code paths run on the CPU) the defaults are mixed precision + XLA;
    a rerun with other options is refused; explicit --no-mixed-precision/--no-xla win over the device."""
    import keras

    register_tiny()
    run = tmp_path / "r"
    res = _invoke(_tiny_args(stores, run, "--epochs", "1"))
    assert res.exit_code == 0, res.output
    conf = _config(run)
    assert conf["mixed_precision"] is True and conf["xla"] is True and conf["device"] == "gpu"
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32", "the global policy is restored"
    r = CliRunner().invoke(cli, _tiny_args(stores, run, "--epochs", "1", "--lr", "0.5"))
    assert r.exit_code == 1 and "differs in: optim" in r.output
    r = _invoke(_tiny_args(stores, run, "--epochs", "1", "--lr", "0.5", "--overwrite", "--no-mixed-precision",
                           "--no-xla"))
    assert r.exit_code == 0 and _config(run)["optim"]["lr"] == 0.5
    assert _config(run)["mixed_precision"] is False and _config(run)["xla"] is False
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("conv1").dtype_policy.name == "float32"


def _features_file(tmp_path):
    from featx.store import StoreWriter

    p = tmp_path / "feats.h5"
    with StoreWriter(p, kind="features", row_shape=(4,), dtype=np.float32, paths=["a", "b"], labels=[0, 1],
                     label_names=["x", "y"], config={}) as w:
        w.add_batch(0, np.zeros((2, 4), np.float32))
        w.finish()
    return str(p)
