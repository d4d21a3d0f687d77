"""``tf.distribute`` strategies for ``featx train`` (``--strategy``), and CPU logical devices.

* ``one``: TensorFlow's default strategy (one device: the first GPU, else the CPU);
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local GPUs (over the logical CPU
  devices when there is no GPU and the CPU was split with ``cpu_devices``): synchronous data
  parallelism, one replica per device, gradients all-reduced every step;
* ``auto``: ``mirrored`` when more than one GPU is visible, else ``one``;
* ``multiworker`` (several machines): refused. ``MultiWorkerMirroredStrategy`` fails under Keras 3
  (``ValueError: Attempt to convert a value (PerReplica...)``, keras-team/keras#20585, reproduced
  here with two localhost workers and ``TF_CONFIG``, TensorFlow 2.21 / Keras 3.15).

``cpu_devices=N`` splits the CPU into N logical devices: a testing aid that lets the mirrored
path run on a machine without GPUs (it does not make training faster: the devices share the
cores). It must happen before TensorFlow initialises its devices, i.e. at the start of a process.
"""

from __future__ import annotations

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
    """Raise a :class:`ParameterError` (param ``strategy``) unless ``name`` can be used here."""
    if name not in STRATEGIES:
        raise ParameterError("strategy", f"strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    if name == "multiworker":
        raise ParameterError("strategy", MULTIWORKER_REFUSAL)


def configure_cpu_devices(n: int | None) -> None:
    """Split the first CPU into ``n`` logical devices (None: leave TensorFlow's default).

    Raises a :class:`FeatxError` when TensorFlow has already initialised its devices with another
    split (in a process that already ran TensorFlow: start a new process).
    """
    if n is None:
        return
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


@dataclass(frozen=True)
class Distribution:
    """A resolved strategy: its name (``one`` or ``mirrored``), the ``tf.distribute`` object, the
    devices it replicates over and their count."""

    name: str
    strategy: object
    devices: tuple[str, ...]

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)


def resolve_strategy(name: str) -> Distribution:
    """The strategy for ``name`` on this machine (see the module docstring)."""
    check_strategy(name)
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
