"""The one place featx decides how a forward pass runs on the devices present.

:func:`resolve_accel` turns the user's ``--mixed-precision/--xla`` choices (``None`` = automatic)
into an :class:`Accel`: float16 compute and XLA compilation default to on when there is a GPU and
off on a CPU (XLA on a CPU mostly adds compile time; float16 on a CPU is emulated and slow), and the
read-back of batch ``k`` overlaps the dispatch of batch ``k+1`` only on a GPU (on a CPU the call is
synchronous, so overlap would only delay each result by a batch). ``featx extract``, ``featx
predict`` and ``featx train`` all call it.

:func:`set_memory_growth` makes TensorFlow allocate GPU memory as needed instead of taking the
whole device, so several processes (e.g. Ray actors) can share a machine.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Accel:
    """How to run: ``mixed_precision`` (float16 compute), ``xla`` (``jit_compile``), ``overlap``
    (dispatch the next batch before reading back the previous one), ``gpus`` (GPUs seen)."""

    mixed_precision: bool
    xla: bool
    overlap: bool
    gpus: int

    @property
    def device(self) -> str:
        """``"CPU"`` or ``"GPU x N"``: a short label for reports."""
        return f"GPU x {self.gpus}" if self.gpus else "CPU"

    def describe(self) -> str:
        """``"mixed precision, XLA"`` or ``"float32"``."""
        on = [m for m, flag in (("mixed precision", self.mixed_precision), ("XLA", self.xla)) if flag]
        return ", ".join(on) or "float32"


def gpu_count() -> int:
    """Physical GPUs TensorFlow sees in this process (imports TensorFlow)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_accel(mixed_precision: bool | None = None, xla: bool | None = None, *, gpus: int | None = None) -> Accel:
    """Decide mixed precision / XLA / read-back overlap. ``None`` means: on when a GPU is present.

    ``gpus`` is the number of GPUs the work will run on; by default the GPUs this process sees
    (a Ray driver passes the cluster's count, since its workers, not the driver, hold the GPUs).
    """
    n = gpu_count() if gpus is None else int(gpus)
    on = n > 0
    return Accel(
        mixed_precision=on if mixed_precision is None else bool(mixed_precision),
        xla=on if xla is None else bool(xla),
        overlap=on,
        gpus=n,
    )


def set_memory_growth() -> None:
    """Let TensorFlow grow GPU memory on demand (call before any GPU op; no-op without a GPU)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: the setting can no longer change
            pass
