"""One small registry API for everything featx builds by name (the timm ``_registry.py`` pattern).

Both registries use it: feature backbones (:data:`featx.backbones.registry.BACKBONES`) and the
from-scratch models (:data:`scratch_models.registry.MODELS`)::

    reg = Registry("scratch model", order="name")
    reg.register(info, builder)          # info: a frozen dataclass with a ``name`` field
    reg.list_infos()                     # [info, ...]      reg.list_names()  # ['alexnet', ...]
    reg.get_info("alexnet")              # RegistryError (a FeatxError) for unknown names
    reg.create("alexnet", **kwargs)      # builder(**kwargs)

The info objects are plain metadata (names, input sizes, dimensions, descriptions, defaults):
registering and listing import nothing heavy, so ``featx models`` and every ``--help`` run
without TensorFlow. Builders import Keras themselves, when called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from featx.errors import RegistryError

Info = TypeVar("Info")

#: ``order`` values: keep registration order (the default entry first) or sort by name.
ORDERS = ("registration", "name")


class Registry(Generic[Info]):
    """Name -> (info, builder). Names are case-insensitive (stored lower-case).

    Args:
        kind: what is registered, for messages (``"backbone"``, ``"scratch model"``).
        order: ``"registration"`` or ``"name"``: the order of :meth:`list_infos` / :meth:`list_names`.
        hint: appended to the unknown-name message (other accepted spellings, where to look).
    """

    def __init__(self, kind: str, *, order: str = "registration", hint: str = "") -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}. Received: order={order!r}")
        self.kind = kind
        self.order = order
        self.hint = hint
        self._entries: dict[str, tuple[Info, Callable[..., Any]]] = {}

    @staticmethod
    def key(name: str) -> str:
        return str(name).strip().lower()

    # ------------------------------------------------------------------------------ registering
    def register(self, info: Info, builder: Callable[..., Any]) -> Callable[..., Any]:
        """Add ``info`` (its ``name`` is the key) with its ``builder``; returns the builder.

        Raises:
            RegistryError: if the name is taken.
        """
        key = self.key(info.name)
        if key in self._entries:
            raise RegistryError(
                f"{self.kind} {key!r} is already registered; register it under another name"
            )
        self._entries[key] = (info, builder)
        return builder

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests and plugins); unknown names raise :class:`RegistryError`."""
        self._lookup(name)
        del self._entries[self.key(name)]

    @contextmanager
    def registered(self, info: Info, builder: Callable[..., Any]) -> Iterator[Info]:
        """Register for the duration of a ``with`` block (tests: nothing leaks into later tests)."""
        self.register(info, builder)
        try:
            yield info
        finally:
            self._entries.pop(self.key(info.name), None)

    # --------------------------------------------------------------------------------- reading
    def list_infos(self) -> list[Info]:
        """Every entry's info, in the registry's order."""
        return [self._entries[k][0] for k in self.list_names()]

    def list_names(self) -> list[str]:
        names = list(self._entries)
        return sorted(names) if self.order == "name" else names

    def get_info(self, name: str) -> Info:
        """The info of ``name``.

        Raises:
            RegistryError: for an unknown name; the message lists the registered ones.
        """
        return self._lookup(name)[0]

    def get_builder(self, name: str) -> Callable[..., Any]:
        return self._lookup(name)[1]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the builder of ``name`` with the given arguments."""
        return self._lookup(name)[1](*args, **kwargs)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.key(name) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.list_names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list_names()})"

    def _lookup(self, name: str) -> tuple[Info, Callable[..., Any]]:
        entry = self._entries.get(self.key(name)) if isinstance(name, str) else None
        if entry is None:
            choices = ", ".join(self.list_names()) or "(none registered)"
            raise RegistryError(
                f"unknown {self.kind} {name!r}: choose one of {choices}{self.hint} (see `featx models`)"
            )
        return entry
