"""Where the cross-validation folds of ``featx fit`` run: a joblib backend, local or on a Ray cluster.

* ``threading`` (default): the folds share the features in memory (no copy per worker); lbfgs
  spends its time in BLAS and Cython code that release the GIL.
* ``loky``: worker processes (joblib memory-maps the features to them).
* ``ray``: joblib's Ray backend (``ray.util.joblib.register_ray``): every fold is a Ray task on the
  cluster at ``address`` (``None`` starts or joins a local Ray). The folds' results are the same as
  with the local backends: the search is deterministic for a seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from featx.errors import FeatxError
from featx.fit.search import BACKENDS

RAY_INSTALL = 'pip install "featx[ray]"'


def import_ray():
    """``ray``, or one line saying how to install it."""
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError:
        raise FeatxError(f"backend='ray' needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray, register_ray


@contextlib.contextmanager
def joblib_backend(backend: str = "threading", *, address: str | None = None, jobs: int | None = -1) -> Iterator[None]:
    """Run the joblib work inside this block under ``backend``."""
    from joblib import parallel_config

    if backend not in BACKENDS:
        raise FeatxError(f"backend must be one of {', '.join(BACKENDS)}. Received: backend={backend!r}")
    if address is not None and backend != "ray":
        raise FeatxError(f"address={address!r} applies to backend='ray' only. Received: backend={backend!r}")
    if backend != "ray":
        with parallel_config(backend=backend, n_jobs=jobs):
            yield
        return
    ray, register_ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise FeatxError(f"cannot connect to Ray at address={address!r}: {str(e).splitlines()[0]}") from None
        started = True
    register_ray()
    try:
        with parallel_config(backend="ray", n_jobs=jobs):
            yield
    finally:
        if started:
            ray.shutdown()
