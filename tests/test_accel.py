"""``resolve_accel``: the one place mixed precision / XLA / overlap are decided; extract (local and
Ray), train and predict take its GPU defaults when a GPU is counted (the count is faked: no GPU here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from featx.runtime.accel import Accel, resolve_accel


def test_defaults_follow_the_devices():
    assert resolve_accel(gpus=0) == Accel(mixed_precision=False, xla=False, overlap=False, gpus=0)
    assert resolve_accel(gpus=2) == Accel(mixed_precision=True, xla=True, overlap=True, gpus=2)
    assert resolve_accel(gpus=2).device == "GPU x 2" and resolve_accel(gpus=0).device == "CPU"


def test_explicit_choices_win_and_overlap_stays_with_the_device():
    a = resolve_accel(mixed_precision=True, xla=False, gpus=0)
    assert (a.mixed_precision, a.xla, a.overlap) == (True, False, False)
    assert a.describe() == "mixed precision"
    b = resolve_accel(mixed_precision=False, xla=False, gpus=1)
    assert (b.mixed_precision, b.xla, b.overlap, b.describe()) == (False, False, True, "float32")


def test_this_machine_is_detected():
    import tensorflow as tf

    n = len(tf.config.list_physical_devices("GPU"))
    assert resolve_accel().gpus == n and resolve_accel().mixed_precision == (n > 0)


def test_jax_always_jit_compiles_the_others_only_on_a_gpu():
    assert resolve_accel(gpus=0, backend="jax").xla is True
    assert resolve_accel(gpus=0, backend="torch").xla is False
    assert resolve_accel(gpus=1, backend="torch").xla is True
    assert resolve_accel(gpus=0, xla=False, backend="jax").xla is False
    assert resolve_accel(gpus=0, backend="jax").backend == "jax"


def test_policy_names_the_half_type():
    assert Accel(True, False, True, 1, half="bfloat16").policy == "mixed_bfloat16"
    assert Accel(True, True, True, 1).policy == "mixed_float16"
    assert Accel(False, True, True, 1, half="bfloat16").policy == "float32"
    assert Accel(True, True, True, 1, half="bfloat16").describe() == "mixed precision (bfloat16), XLA"
    assert resolve_accel(gpus=2).half == "float16"  # a count passed in: no device to ask, float16


# ------------------------------------------------------------------------------ the stages follow it
class _Stop(Exception):
    pass


def test_extract_turns_mixed_precision_xla_and_overlap_on_with_a_gpu(one_gpu, tmp_path, monkeypatch):
    import featx.extract.api as api
    from tests.conftest import color_image, save

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        save(color_image(rng, tint=ord(c)), tmp_path / "src" / c / "0.png")
    seen = {}

    def spy(source, out, *, config, mapper, **kw):
        seen.update(config=config, mapper=mapper, overlap=kw["overlap"])
        raise _Stop

    monkeypatch.setattr(api, "run_local", spy)
    with pytest.raises(_Stop):
        api.extract(tmp_path / "src", tmp_path / "f.h5", backbone="vgg16", weights="none", image_size=32,
                    progress=False)
    m = seen["mapper"]
    assert (m.mixed_precision, m.xla, seen["overlap"]) == (True, True, True)
    assert seen["config"]["mixed_precision"] is True and seen["config"]["xla"] is True
    with pytest.raises(_Stop):  # the user's choice still wins over the device default
        api.extract(tmp_path / "src", tmp_path / "f.h5", backbone="vgg16", weights="none", image_size=32,
                    mixed_precision=False, xla=False, progress=False)
    assert (seen["mapper"].mixed_precision, seen["mapper"].xla, seen["overlap"]) == (False, False, True)


def test_ray_engine_takes_the_clusters_gpus_not_the_drivers(tmp_path, monkeypatch):
    """The driver has no GPU; the cluster has 2: the actors get mixed precision + XLA, one GPU each."""
    import featx.extract.api as api
    import featx.extract.ray_runner as rr
    import featx.runtime.backend as backend
    from tests.conftest import color_image, save

    monkeypatch.setattr(backend, "gpu_count", lambda: 0)
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(3):
            save(color_image(rng, tint=ord(c)), tmp_path / "src" / c / f"{i}.png")

    class Cluster:
        def __init__(self, address=None, **kwargs):
            self.gpus, self.cpus = 2, 8.0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    seen = {}

    def spy(conn, source, out, shards, *, config, mapper, workers, run_kwargs, bar=None):
        seen.update(gpus=conn.gpus, mapper=mapper, workers=workers, overlap=run_kwargs["overlap"], config=config)
        raise _Stop

    real_run_ray = rr.run_ray
    monkeypatch.setattr(rr, "RayConnection", Cluster)
    monkeypatch.setattr(rr, "run_ray", spy)
    with pytest.raises(_Stop):
        api.extract(tmp_path / "src", tmp_path / "f.h5", backbone="vgg16", weights="none", image_size=32,
                    engine="ray", progress=False)
    m = seen["mapper"]
    assert (m.mixed_precision, m.xla, seen["overlap"]) == (True, True, True)
    assert seen["workers"] == 2 and seen["config"]["xla"] is True  # one actor per GPU by default

    # each actor asks Ray for one GPU
    ray = pytest.importorskip("ray")
    opts = {}

    class Remote:
        def options(self, **kw):
            opts.update(kw)
            raise _Stop

    monkeypatch.setattr(ray, "remote", lambda cls: Remote())
    from featx.extract.sources import Shard

    with pytest.raises(_Stop):
        real_run_ray(Cluster(), None, tmp_path / "f.h5", [Shard(0, 0, 3), Shard(1, 3, 6)], config={}, mapper=m,
                   workers=2, run_kwargs={})
    assert opts["num_gpus"] == 1 and opts["num_cpus"] == 1.0


# ------------------------------------------------------------------ train/finetune: the half type
def _gpu(monkeypatch, bf16: bool):
    import featx.runtime.backend as backend

    monkeypatch.setattr(backend, "gpu_count", lambda: 1)
    monkeypatch.setattr(backend, "bf16_supported", lambda: bf16)


def test_train_on_a_bf16_gpu_trains_in_mixed_bfloat16(tmp_path, monkeypatch):
    """One GPU counted that reports bfloat16 (compute capability 8.0+; faked, the run is on the CPU):
    featx train builds its layers under ``mixed_bfloat16`` (not float16), the softmax in float32,
    no loss scaling, and records the policy; the global policy is restored."""
    import keras

    from featx.train import TrainConfig, train
    from tests._scratch_helpers import make_stores, register_tiny

    _gpu(monkeypatch, bf16=True)
    register_tiny()
    stores = make_stores(tmp_path / "s", size=16, n_train=16, n_val=4, n_test=4)
    res = train(TrainConfig(model="tinycnn", train=stores["train"], out=str(tmp_path / "r"), epochs=1, batch_size=16,
                            input_size=16, precise_bn_images=0, xla=False), verbose=0)
    conf = json.loads(res.config_path.read_text())
    assert conf["mixed_precision"] is True and conf["dtype_policy"] == "mixed_bfloat16"
    assert np.isfinite(res.last["loss"])
    model = keras.saving.load_model(res.model_path)
    assert model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("bf16, mixed, policy", [(True, None, "mixed_bfloat16"), (False, None, "mixed_float16"),
                                                  (True, False, "float32")])
def test_train_and_finetune_build_under_resolve_accels_policy(tmp_path, monkeypatch, bf16, mixed, policy):
    """Both build their networks under :attr:`Accel.policy` (bfloat16 when the GPU reports it,
    float16 otherwise, float32 when mixed precision is off), seen at the moment the network is built."""
    import keras

    import featx.finetune.network as ftnet
    import featx.train.api as trapi
    from featx.finetune import FinetuneConfig, finetune
    from featx.train import TrainConfig, train
    from tests._scratch_helpers import make_stores, register_tiny

    _gpu(monkeypatch, bf16=bf16)
    register_tiny()
    stores = make_stores(tmp_path / "s", size=16, n_train=8, n_val=4, n_test=4)
    seen = {}

    def spy(name):
        def build(*a, **kw):
            seen[name] = keras.config.dtype_policy().name
            raise _Stop
        return build

    monkeypatch.setattr(trapi, "_build_model", spy("train"))
    with pytest.raises(_Stop):
        train(TrainConfig(model="tinycnn", train=stores["train"], out=str(tmp_path / "r"), epochs=1, batch_size=8,
                          input_size=16, mixed_precision=mixed), verbose=0)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["dtype_policy"] == policy

    monkeypatch.setattr(ftnet, "build_network", spy("finetune"))
    with pytest.raises(_Stop):
        finetune(FinetuneConfig(backbone="vgg16", weights="none", image_size=32, train=stores["train"],
                                out=str(tmp_path / "f"), epochs=1, batch_size=8, mixed_precision=mixed), verbose=0)
    assert json.loads((tmp_path / "f" / "config.json").read_text())["dtype_policy"] == policy
    assert seen == {"train": policy, "finetune": policy}
    assert keras.config.dtype_policy().name == "float32"
