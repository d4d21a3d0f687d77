"""The Ray runner: a pool of extractor actors, each running the local runner on whole shards.

The shape img2dataset and clip-retrieval use: Ray Core actors (``num_gpus=1`` each where the
cluster has GPUs), each building the backbone once (from the pickled
:class:`~featx.extract.mapper.FeatureMapper`: settings only) and running
:func:`~featx.extract.local.run_local` (``tf.data`` decode on its node's CPUs, compiled forward pass,
``StoreWriter``) on one shard at a time, handed out by :class:`ray.util.ActorPool`. Each actor sets
its Keras backend to the driver's (``KERAS_BACKEND`` in the actor's ``runtime_env``: TensorFlow,
JAX or PyTorch), takes GPU memory as needed (:func:`featx.runtime.backend.set_memory_growth`)
before touching the GPU and opens HDF5 files itself. Finished
shard files are the resume state; the driver merges them (:mod:`featx.extract.shards`).

CPU reservations: an actor reserves ``min(1, CPUs / workers)`` CPUs, so every actor can be placed
whatever ``workers`` is (Ray Data's reservation deadlock, ray#44687, cannot happen here: no other
task has to be scheduled while the actors hold the CPUs).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path

from featx.constants import DEFAULT_CONNECT_TIMEOUT
from featx.errors import FeatxError
from featx.extract.local import run_local
from featx.extract.mapper import FeatureMapper
from featx.extract.shards import shard_config, shard_path
from featx.extract.sources import Shard, Source

INSTALL_HINT = 'pip install "featx[ray]"'
#: Seconds between progress polls of the actors.
POLL_SECONDS = 0.25
#: How long a worker waits for a shard another (dying) process still holds.
SHARD_LOCK_WAIT = 60.0


def require_ray():
    """``import ray``, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise FeatxError(f"the ray engine needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class RayConnection:
    """Use the Ray instance this process is connected to, or connect / start one (and stop it after).

    ``address``: ``None`` starts a local instance; ``"auto"`` or ``"ray://host:10001"`` joins a cluster,
    giving up after ``timeout`` seconds when it does not answer (:func:`featx.runtime.cluster.connect_ray`).
    """

    def __init__(self, address: str | None = None, *, timeout: float = DEFAULT_CONNECT_TIMEOUT):
        self.address = address
        self.timeout = timeout
        self.started = False

    def __enter__(self) -> RayConnection:
        import logging

        from featx.runtime.cluster import connect_ray

        ray = self.ray = require_ray()
        kw = {} if self.address else {"include_dashboard": False}  # only for a new local instance
        self.started = connect_ray(ray, self.address, timeout=self.timeout, log_to_driver=False,
                                   logging_level=logging.WARNING, **kw)
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0))
        self.cpus = float(res.get("CPU", 0)) or 1.0
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()


class ShardWorker:
    """One extractor replica (made a Ray actor by :func:`run_ray`)."""

    def __init__(self, mapper: FeatureMapper, run_kwargs: dict):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from featx.runtime.backend import set_memory_growth

        set_memory_growth()  # before any GPU op: share the GPU instead of taking all of it
        self.mapper = mapper
        self.run_kwargs = run_kwargs
        self.rows = 0

    def setup(self) -> dict:
        from featx.runtime.backend import gpu_count

        self.mapper.setup()
        self.mapper.warmup()  # tracing / XLA compilation belongs to the cold start, not to the shards
        n = gpu_count()
        return {"params": self.mapper.count_params(), "device": f"GPU x {n}" if n else "CPU",
                "host": socket.gethostname(), "pid": os.getpid()}

    def _count(self, n: int) -> None:
        self.rows += n

    def run_shard(self, table: Source, path: str, config: dict) -> dict:
        from featx.outputs import OutputLockedError, output_lock

        deadline = time.monotonic() + SHARD_LOCK_WAIT
        while True:  # a killed run's worker may still be exiting: wait for it, never write alongside it
            try:
                lock = output_lock(path)
                lock.__enter__()
                break
            except OutputLockedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            run = run_local(table, path, config=config, mapper=self.mapper, on_rows=self._count, allow_empty=True,
                            finish_attrs=lambda r: {"skipped": r.skipped, "n_skipped": len(r.skipped)},
                            **self.run_kwargs)
        finally:
            lock.__exit__(None, None, None)
        return {"processed": run.processed, "seconds": run.seconds, "resumed_from": run.resumed_from,
                "reused": run.reused}

    def rows_done(self) -> int:
        return self.rows


@dataclasses.dataclass
class RayRun:
    processed: int = 0
    seconds: float = 0.0  # shards handed out -> last shard stored (actor start and model build excluded)
    start_seconds: float = 0.0  # actors started, backbones built and compiled
    workers: int = 0
    params: int = 0
    device: str = ""


def run_ray(
    conn: RayConnection,
    source: Source,
    out: Path,
    shards: list[Shard],
    *,
    config: dict,
    mapper: FeatureMapper,
    workers: int,
    run_kwargs: dict,
    bar=None,
) -> RayRun:
    """Run ``shards`` on ``workers`` actors; returns when every shard file is finished."""
    import ray
    from ray.util import ActorPool

    result = RayRun(workers=workers)
    if not shards:
        return result
    workers = result.workers = max(1, min(workers, len(shards)))
    from featx.runtime.backend import configured_backend

    opts: dict = {"max_concurrency": 2}  # run_shard + progress polls
    backend = configured_backend()
    if backend != "tensorflow" or "KERAS_BACKEND" in os.environ:
        # each actor runs Keras on the driver's backend (fixed when the actor first imports keras)
        opts["runtime_env"] = {"env_vars": {"KERAS_BACKEND": backend}}
    if conn.gpus:
        opts["num_gpus"] = 1
        opts["num_cpus"] = min(1.0, conn.cpus / workers)
    else:
        opts["num_cpus"] = min(1.0, conn.cpus / workers)
    actor_cls = ray.remote(ShardWorker).options(**opts)
    t0 = time.perf_counter()
    actors = [actor_cls.remote(mapper, run_kwargs) for _ in range(workers)]
    try:
        infos = _get(ray, [a.setup.remote() for a in actors])
        result.params, result.device = infos[0]["params"], infos[0]["device"]
        result.start_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        pool = ActorPool(actors)
        for shard in shards:
            pool.submit(
                lambda a, s: a.run_shard.remote(source.rows(s.start, s.stop), str(shard_path(out, s)), shard_config(config, s)),
                shard,
            )
        shown = 0
        while pool.has_next():
            try:
                done = pool.get_next_unordered(timeout=POLL_SECONDS)
                result.processed += done["processed"]
            except TimeoutError:
                pass
            except Exception as e:  # noqa: BLE001 - Ray wraps worker failures in many types
                raise _worker_error(e, out) from None
            if bar is not None:
                shown = _update_bar(ray, actors, bar, shown)
        if bar is not None:
            _update_bar(ray, actors, bar, shown)
        result.seconds = time.perf_counter() - t1
    finally:
        for a in actors:
            ray.kill(a)
    return result


def _get(ray, refs):
    try:
        return ray.get(refs)
    except Exception as e:  # noqa: BLE001
        raise _worker_error(e, None) from None


def _update_bar(ray, actors, bar, shown: int) -> int:
    total = 0
    for a in actors:
        try:
            total += ray.get(a.rows_done.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - a dead actor: its shard's error surfaces from the pool
            return shown
    if total > shown:
        bar.update(total - shown)
    return max(total, shown)


def _worker_error(e: BaseException, out: Path | None) -> FeatxError:
    """One line for a failed or lost worker (a FeatxError raised inside a worker keeps its message)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, FeatxError):
        return FeatxError(str(cause))
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    where = f"; finished shards are kept in {out}.shards: rerun the same command to resume" if out else ""
    return FeatxError(f"a Ray extract worker failed ({type(e).__name__}: {first}){where}")


def default_workers(conn: RayConnection) -> int:
    """One worker per GPU of the cluster, or 1 without GPUs."""
    return max(1, conn.gpus)

