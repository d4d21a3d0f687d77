"""The PyTorch backend of :mod:`featx.runtime.backend` (imports PyTorch)."""

from __future__ import annotations

import warnings

import torch


def gpu_count() -> int:
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def bf16_supported() -> bool:
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def set_memory_growth() -> None:
    """Nothing to do: PyTorch's caching allocator takes GPU memory as it is needed."""


def compile_forward(fn, *, jit: bool, model=None):
    state = {"fn": fn}
    if jit:
        state["fn"] = torch.compile(fn)

    def forward(x):
        with torch.no_grad():
            try:
                return state["fn"](x)
            except Exception as e:  # noqa: BLE001 - torch.compile failures (no compiler, graph breaks...)
                if state["fn"] is fn:
                    raise
                warnings.warn(f"torch.compile failed ({type(e).__name__}); running eagerly", stacklevel=2)
                state["fn"] = fn
                return fn(x)

    return forward


def to_numpy(x):
    import numpy as np

    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
