"""The one place featx decides how a forward pass runs on the devices present, on any backend.

:func:`resolve_accel` turns the user's ``--mixed-precision/--xla`` choices (``None`` = automatic)
into an :class:`Accel`, asking :mod:`featx.runtime.backend` what the process has:

* **GPUs**: counted by the backend in use (TensorFlow, JAX or PyTorch);
* **mixed precision**: on with a GPU, off on a CPU (half precision on a CPU is emulated and slow);
  the half type is ``bfloat16`` where every GPU computes it natively (compute capability 8.0+)
  and ``float16`` otherwise (:attr:`Accel.policy` is the Keras dtype policy);
* **XLA / jit**: TensorFlow and PyTorch compile (``jit_compile`` / ``torch.compile``) on a GPU only
  (on a CPU it mostly adds compile time); JAX always jit-compiles, since its eager mode dispatches
  one op at a time and is slower everywhere;
* **overlap** (dispatch batch ``k+1`` before reading back batch ``k``): on a GPU.

``featx extract``, ``featx predict`` and ``featx train`` all call it.
"""

from __future__ import annotations

import dataclasses

from featx.runtime import backend as _backend


@dataclasses.dataclass(frozen=True)
class Accel:
    """How to run: ``mixed_precision`` (half-precision compute), ``xla`` (``jit_compile`` /
    ``jax.jit`` / ``torch.compile``), ``overlap`` (dispatch the next batch before reading back the
    previous one), ``gpus`` (GPUs seen), ``backend`` (Keras backend) and ``half`` (the half type
    mixed precision computes in: ``float16`` or ``bfloat16``)."""

    mixed_precision: bool
    xla: bool
    overlap: bool
    gpus: int
    backend: str = "tensorflow"
    half: str = "float16"

    @property
    def device(self) -> str:
        """``"CPU"`` or ``"GPU x N"``: a short label for reports."""
        return f"GPU x {self.gpus}" if self.gpus else "CPU"

    @property
    def policy(self) -> str:
        """The Keras dtype policy: ``mixed_float16``, ``mixed_bfloat16`` or ``float32``."""
        return f"mixed_{self.half}" if self.mixed_precision else "float32"

    def describe(self) -> str:
        """``"mixed precision, XLA"``, ``"mixed precision (bfloat16)"`` or ``"float32"``."""
        mp = "mixed precision" + (" (bfloat16)" if self.half == "bfloat16" else "")
        on = [m for m, flag in ((mp, self.mixed_precision), ("XLA", self.xla)) if flag]
        return ", ".join(on) or "float32"


def gpu_count() -> int:
    """GPUs the Keras backend of this process sees (imports the backend)."""
    return _backend.gpu_count()


def set_memory_growth() -> None:
    """Take GPU memory as needed (see :func:`featx.runtime.backend.set_memory_growth`)."""
    _backend.set_memory_growth()


def resolve_accel(mixed_precision: bool | None = None, xla: bool | None = None, *, gpus: int | None = None,
                  backend: str | None = None) -> Accel:
    """Decide mixed precision / XLA-jit / read-back overlap. ``None`` means: on when a GPU is present
    (XLA-jit: always on under JAX).

    ``gpus`` is the number of GPUs the work will run on; by default the GPUs this process sees
    (a Ray driver passes the cluster's count, since its workers, not the driver, hold the GPUs);
    ``backend`` defaults to the one Keras uses (read without importing it when ``gpus`` is given).
    """
    name = backend or (_backend.configured_backend() if gpus is not None else _backend.backend_name())
    n = _backend.gpu_count() if gpus is None else int(gpus)
    on = n > 0
    half = "bfloat16" if gpus is None and on and _backend.bf16_supported() else "float16"
    return Accel(
        mixed_precision=on if mixed_precision is None else bool(mixed_precision),
        xla=(on or name == "jax") if xla is None else bool(xla),
        overlap=on,
        gpus=n,
        backend=name,
        half=half,
    )
