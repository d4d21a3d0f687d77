"""Joining a Ray cluster, with a bounded wait: one helper for every Ray entry point.

:func:`connect_ray` is used by ``featx extract --engine ray`` (:mod:`featx.extract.ray_runner`) and
``featx fit --backend ray`` (:mod:`featx.fit.backends`). Ray's own client retries an unreachable
GCS address for many minutes (``ray.init`` has no timeout), so the address is first probed with a
TCP connection that gives up after ``timeout`` seconds (``--connect-timeout``, default
:data:`featx.constants.DEFAULT_CONNECT_TIMEOUT`): a refused, unroutable or silent address is one
line naming it. ``None`` (start a local Ray) and ``"auto"`` / ``"local"`` are not probed.
"""

from __future__ import annotations

import socket
import warnings

from featx.constants import DEFAULT_CONNECT_TIMEOUT
from featx.errors import FeatxError

#: Ports Ray listens on when an address names none: the GCS, and the Ray client server (ray://).
GCS_PORT, CLIENT_PORT = 6379, 10001


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` an address names (``None`` for ``auto``/``local``); ``ValueError`` when malformed."""
    a = address.strip()
    if a in ("auto", "local", ""):
        return None
    client = a.startswith("ray://")
    if client:
        a = a[len("ray://"):]
    a = a.split("/", 1)[0]
    host, sep, port = a.rpartition(":") if a.count(":") == 1 or a.startswith("[") else ("", "", "")
    if not sep:
        host, port = a, ""
    host = host.strip("[]")
    if not host:
        raise ValueError(address)
    return host, int(port) if port else (CLIENT_PORT if client else GCS_PORT)


def check_reachable(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
    """Raise a one-line :class:`FeatxError` unless something accepts a TCP connection at ``address`` within ``timeout`` s."""
    try:
        target = host_port(address)
    except ValueError:
        raise FeatxError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto") from None
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            return
    except TimeoutError:
        why = f"no answer within {timeout:g}s (--connect-timeout)"
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
    raise FeatxError(f"cannot connect to Ray at {address}: {why}; check the address and that the cluster is up")


def connect_ray(ray, address: str | None, *, timeout: float = DEFAULT_CONNECT_TIMEOUT, **init_kwargs) -> bool:
    """Join (or start, with ``address=None``) Ray unless this process already is connected.

    Returns True when this call connected (the caller shuts Ray down after), False when Ray was
    already initialized. Errors are one line naming the address.
    """
    if ray.is_initialized():
        return False
    if timeout is None or not timeout > 0:
        raise FeatxError(f"--connect-timeout must be a positive number of seconds. Received: {timeout}")
    if address is not None:
        check_reachable(address, timeout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ray:// prints a two-line UserWarning before its own error
            ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = address or "a new local instance"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise FeatxError(f"cannot connect to Ray at {where}: {first}") from None
    return True
