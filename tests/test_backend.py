"""The backend seam (:mod:`featx.runtime.backend`): the backend read as Keras reads it, compiled
forward passes equal to the eager call, one-line errors for what needs TensorFlow. JAX runs in a
subprocess (Keras fixes its backend at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featx.errors import FeatxError
from featx.runtime import backend

ROOT = Path(__file__).resolve().parents[1]


def test_backend_is_read_as_keras_reads_it(tmp_path):
    assert backend.backend_from_config({"KERAS_BACKEND": "JAX"}) == "jax"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert backend.backend_from_config({"KERAS_HOME": str(tmp_path)}) == "torch"
    assert backend.backend_from_config({"KERAS_HOME": str(tmp_path), "KERAS_BACKEND": "jax"}) == "jax"
    assert backend.backend_from_config({"KERAS_HOME": str(tmp_path / "nowhere")}) == "tensorflow"
    (tmp_path / "keras.json").write_text("{not json")
    assert backend.backend_from_config({"KERAS_HOME": str(tmp_path)}) == "tensorflow"


def test_this_process_runs_tensorflow():
    import keras

    assert backend.backend_name() == keras.backend.backend() == "tensorflow" == backend.configured_backend()
    backend.require_tensorflow("featx export --format savedmodel")  # no error


def test_require_tensorflow_names_the_backend(monkeypatch):
    monkeypatch.setattr(backend, "configured_backend", lambda: "jax")
    with pytest.raises(FeatxError) as e:
        backend.require_tensorflow("--strategy mirrored")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("--strategy mirrored needs the TensorFlow backend")
    assert "KERAS_BACKEND=jax" in msg and "KERAS_BACKEND=tensorflow" in msg


@pytest.mark.parametrize("jit", [False, True])
def test_compile_forward_equals_the_eager_call_on_tensorflow(jit):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                              keras.layers.GlobalAveragePooling2D()])
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    fn = backend.compile_forward(lambda t: model(t, training=False), jit=jit, model=model)
    out = backend.to_numpy(fn(x))
    assert isinstance(out, np.ndarray) and out.shape == (5, 4)
    np.testing.assert_allclose(out, np.asarray(model(x, training=False)), rtol=1e-5, atol=1e-5)
    assert backend.gpu_count() == len(__import__("tensorflow").config.list_physical_devices("GPU"))


JAX_CHECK = r"""
import json, sys
import numpy as np
from featx.runtime import backend
from featx.runtime.accel import resolve_accel
assert "tensorflow" not in sys.modules
import keras
backend.set_random_seed(0)
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                          keras.layers.GlobalAveragePooling2D()])
x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
eager = np.asarray(model(x, training=False))
jitted = backend.compile_forward(lambda t: model(t, training=False), jit=True, model=model)
out = backend.to_numpy(jitted(x))
model.layers[0].kernel.assign(np.zeros(model.layers[0].kernel.shape, "float32"))  # weights are arguments, not constants
zero = backend.to_numpy(jitted(x))
a = resolve_accel()
print(json.dumps({"backend": backend.backend_name(), "gpus": backend.gpu_count(), "diff": float(np.abs(out - eager).max()),
                  "zero_changed": bool(np.abs(zero - out).max() > 1e-6), "type": type(out).__name__,
                  "accel": [a.backend, a.xla, a.mixed_precision, a.gpus],
                  "tf": "tensorflow" in sys.modules}))
"""


def run_backend(code: str, name: str = "jax", timeout: int = 240) -> dict:
    """Run ``code`` under ``KERAS_BACKEND=name`` in a fresh interpreter; its last stdout line is JSON."""
    pytest.importorskip(name)
    env = {**os.environ, "KERAS_BACKEND": name, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "JAX_PLATFORMS": "cpu"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_jax_backend_compiles_with_the_variables_as_arguments_and_never_imports_tensorflow():
    r = run_backend(JAX_CHECK)
    assert r["backend"] == "jax" and r["gpus"] == 0 and r["type"] == "ndarray"
    assert r["diff"] < 1e-5 and r["zero_changed"]
    assert r["accel"] == ["jax", True, False, 0]  # JAX always jit-compiles; no half precision on a CPU
    assert r["tf"] is False


# ------------------------------------------------------------------ Keras' private TensorFlow flag
def test_keras_still_has_the_private_flag_featx_uses_to_hide_tensorflow():
    """featx hides an installed TensorFlow from Keras under JAX/PyTorch through
    ``keras.src.utils.module_utils.tensorflow._available`` (no public switch in Keras 3.15). This test
    fails when a Keras release renames or drops it: featx would still work, but import TensorFlow."""
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    assert isinstance(lazy, module_utils.LazyModule) and lazy.name == "tensorflow"
    assert "_available" in vars(lazy), "Keras dropped LazyModule._available: featx can no longer hide TensorFlow"
    probe = module_utils.LazyModule("json")  # the flag set to False is what `available` answers, importing nothing
    probe._available = False
    assert probe.available is False and probe.module is None


def test_hiding_tensorflow_fails_soft_when_the_flag_is_gone(monkeypatch):
    from keras.src.utils import module_utils

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as in a JAX process that has not imported it

    fresh = module_utils.LazyModule("tensorflow")
    monkeypatch.setattr(module_utils, "tensorflow", fresh)
    assert backend.hide_unloaded_tensorflow() is True
    assert fresh.available is False and fresh.module is None  # hidden, nothing imported

    class NewLazy:  # a Keras whose lazy module keeps its state elsewhere
        name = "tensorflow"

        @property
        def available(self):
            return True

    other = NewLazy()
    monkeypatch.setattr(module_utils, "tensorflow", other)
    assert backend.hide_unloaded_tensorflow() is False  # says it could not hide it...
    assert "_available" not in vars(other)  # ...and sets nothing Keras would not read

    monkeypatch.setattr(module_utils, "tensorflow", None)  # any other layout: no exception either
    assert backend.hide_unloaded_tensorflow() is False
