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

from featx.constants import DEFAULT_CONNECT_TIMEOUT
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
def joblib_backend(backend: str = "threading", *, address: str | None = None, jobs: int | None = -1,
                   connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Iterator[None]:
    """Run the joblib work inside this block under ``backend`` (Ray: joined within ``connect_timeout`` s)."""
    from joblib import parallel_config

    if backend not in BACKENDS:
        raise FeatxError(f"backend must be one of {', '.join(BACKENDS)}. Received: backend={backend!r}")
    if address is not None and backend != "ray":
        raise FeatxError(f"address={address!r} applies to backend='ray' only. Received: backend={backend!r}")
    if backend != "ray":
        with parallel_config(backend=backend, n_jobs=jobs):
            yield
        return
    from featx.runtime.cluster import connect_ray

    ray, register_ray = import_ray()
    started = connect_ray(ray, address, timeout=connect_timeout, include_dashboard=False, log_to_driver=False)
    register_ray()
    try:
        with parallel_config(backend="ray", n_jobs=jobs):
            yield
    finally:
        if started:
            ray.shutdown()
