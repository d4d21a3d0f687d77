"""Distribution for ``featx train`` (``--strategy``) on each Keras backend, and CPU logical devices.

TensorFlow (``tf.distribute``):

* ``one``: TensorFlow's default strategy (one device: the first GPU, else the CPU);
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local GPUs (over the logical CPU
  devices when there is no GPU and the CPU was split with ``cpu_devices``): synchronous data
  parallelism, one replica per device, gradients all-reduced every step;
* ``auto``: ``mirrored`` when more than one GPU is visible, else ``one``;
* ``multiworker`` (several machines): refused. ``MultiWorkerMirroredStrategy`` fails under Keras 3
  (``ValueError: Attempt to convert a value (PerReplica...)``, keras-team/keras#20585, reproduced
  here with two localhost workers and ``TF_CONFIG``, TensorFlow 2.21 / Keras 3.15).

JAX (``keras.distribution``):

* ``one``: no distribution (the first device); ``auto``: ``DataParallel`` over the local devices
  when there are several, else ``one``;
* ``multiworker``: ``keras.distribution.initialize()`` (the coordinator, process count and id come
  from ``KERAS_DISTRIBUTION_JOB_ADDRESSES``/``_NUM_PROCESSES``/``_PROCESS_ID``, or a cluster
  JAX detects) then ``DataParallel`` over every process's devices: one process per host, each
  reading its own shard of the batches;
* ``mirrored``: a ``tf.distribute`` strategy: refused in one line naming TensorFlow.

PyTorch: ``one`` (and ``auto``) only.

``cpu_devices=N`` splits the CPU into N logical devices: a testing aid that lets the mirrored
path run on a machine without GPUs (it does not make training faster: the devices share the
cores). It must happen before TensorFlow initialises its devices, i.e. at the start of a process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from featx.errors import FeatxError, ParameterError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")
MULTIWORKER_ISSUE = "keras-team/keras#20585"
MULTIWORKER_REFUSAL = (
    "strategy 'multiworker' is not available: tf.distribute.MultiWorkerMirroredStrategy fails under Keras 3 "
    f"(ValueError: Attempt to convert a value (PerReplica...), {MULTIWORKER_ISSUE}); use 'mirrored' for the GPUs "
    "of one machine"
)


def check_strategy(name: str) -> None:
    """Raise a :class:`ParameterError` (param ``strategy``) unless ``name`` can be used with this backend."""
    from featx.runtime.backend import configured_backend, needs_tensorflow_message

    if name not in STRATEGIES:
        raise ParameterError("strategy", f"strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    backend = configured_backend()
    if backend == "tensorflow" and name == "multiworker":
        raise ParameterError("strategy", MULTIWORKER_REFUSAL + "; with KERAS_BACKEND=jax, 'multiworker' runs on keras.distribution")
    if backend != "tensorflow" and name == "mirrored":
        raise ParameterError("strategy", needs_tensorflow_message("strategy 'mirrored' (tf.distribute.MirroredStrategy)", backend)
                             + (" (or use 'auto' / 'multiworker': keras.distribution)" if backend == "jax" else ""))
    if backend not in ("tensorflow", "jax") and name == "multiworker":
        raise ParameterError("strategy", f"strategy 'multiworker' needs the JAX backend (keras.distribution); "
                             f"this featx runs Keras on {backend}: run it with KERAS_BACKEND=jax")


def configure_cpu_devices(n: int | None) -> None:
    """Split the first CPU into ``n`` logical devices (None: leave TensorFlow's default).

    Raises a :class:`FeatxError` when TensorFlow has already initialised its devices with another
    split (in a process that already ran TensorFlow: start a new process).
    """
    if n is None:
        return
    from featx.runtime.backend import configured_backend

    if configured_backend() == "jax":
        _jax_cpu_devices(n)
        return
    if configured_backend() != "tensorflow":
        raise FeatxError(f"cpu_devices applies to the TensorFlow and JAX backends. Received: cpu_devices={n} "
                         f"with KERAS_BACKEND={configured_backend()}")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == n:
            return
        raise FeatxError(
            f"cpu_devices={n}: TensorFlow already initialised {have} CPU device(s) in this process; "
            "split the CPU at the start of a new process"
        ) from None


def _jax_cpu_devices(n: int) -> None:
    """JAX: ``--xla_force_host_platform_device_count=n`` (read when JAX's CPU backend starts)."""
    import os
    import sys

    flag = f"--xla_force_host_platform_device_count={int(n)}"
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join([*flags, flag])
    if "jax" in sys.modules:
        import jax

        have = len(jax.devices("cpu"))
        if have != n:
            raise FeatxError(
                f"cpu_devices={n}: JAX already started with {have} CPU device(s) in this process; "
                "split the CPU at the start of a new process"
            )


@dataclass(frozen=True)
class Distribution:
    """A resolved strategy: its name (``one``, ``mirrored`` or ``multiworker``), the backend's
    object (a ``tf.distribute`` strategy or a ``keras.distribution`` distribution, or None), the
    devices it replicates over and their count."""

    name: str
    strategy: object
    devices: tuple[str, ...]
    backend: str = "tensorflow"

    @property
    def replicas(self) -> int:
        if self.backend == "tensorflow":
            return int(self.strategy.num_replicas_in_sync)
        return len(self.devices)

    @property
    def data_shard(self) -> dict:
        """How this process reads batches: ``{"shard": (index, count) or None, "multiple": k}``
        (JAX data parallel: its part of each global batch, trimmed to a multiple of its devices)."""
        if self.backend != "jax" or self.strategy is None:
            return {}
        import jax

        count = jax.process_count()
        return {"shard": (jax.process_index(), count) if count > 1 else None, "multiple": jax.local_device_count()}

    def scope(self):
        """Where models and optimizers are built: the strategy's or distribution's scope."""
        import contextlib

        if self.strategy is None:
            return contextlib.nullcontext()
        return self.strategy.scope()


def resolve_strategy(name: str) -> Distribution:
    """The strategy for ``name`` on this machine (see the module docstring)."""
    check_strategy(name)
    from featx.runtime.backend import configured_backend

    backend = configured_backend()
    if backend != "tensorflow":
        return _keras_distribution(name, backend)
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one"
    if name == "one":
        strategy = tf.distribute.get_strategy()  # the default strategy: no replication
        return Distribution("one", strategy, (gpus[0] if gpus else tf.config.list_logical_devices("CPU")[0].name,))
    devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    return Distribution("mirrored", strategy, tuple(devices))


def _keras_distribution(name: str, backend: str) -> Distribution:
    """JAX: ``keras.distribution.DataParallel`` (``multiworker``: across processes); PyTorch: one device."""
    if backend != "jax":
        return Distribution("one", None, ("device:0",), backend)
    import jax
    import keras

    from featx.runtime.backend import hide_unloaded_tensorflow

    hide_unloaded_tensorflow()
    if name == "multiworker":
        if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu" or not _jax_has_gpu_plugin():
            # CPU-only processes all-reduce through gloo (JAX's default CPU collectives do not cross processes)
            try:
                jax.config.update("jax_cpu_collectives_implementation", "gloo")
            except (AttributeError, ValueError):  # pragma: no cover - another JAX
                pass
        try:
            keras.distribution.initialize()
        except Exception as e:  # noqa: BLE001 - jax raises RuntimeError/ValueError for a bad cluster spec
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise FeatxError(
                f"strategy 'multiworker': keras.distribution.initialize failed ({type(e).__name__}: {first}); set "
                "KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID"
            ) from None
    devices = keras.distribution.list_devices()
    if name == "auto":
        name = "multiworker" if jax.process_count() > 1 else ("mirrored" if len(devices) > 1 else "one")
    if name == "one":
        return Distribution("one", None, (str(devices[0]),), backend)
    # several processes: each reads its own part of every batch (featx.preprocess.sequence)
    dist = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=jax.process_count() == 1)
    keras.distribution.set_distribution(dist)
    return Distribution("data_parallel" if name == "mirrored" else name, _DistScope(dist), tuple(map(str, devices)), backend)


def _jax_has_gpu_plugin() -> bool:
    """Whether a CUDA/ROCm plugin of jaxlib is installed (without starting JAX's backends)."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm_plugin"))


class _DistScope:
    """A ``keras.distribution`` distribution with the ``scope()`` of a ``tf.distribute`` strategy."""

    def __init__(self, dist):
        self.dist = dist

    def scope(self):
        return self.dist.scope()
