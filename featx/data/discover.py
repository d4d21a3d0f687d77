"""Find labelled images in a source: class folders, ``label.N.jpg`` names, or a CSV of ``path,label``.

Layouts (checked in this order):

* a CSV file: rows of ``path,label`` (paths relative to the CSV's folder; a header row is allowed);
* a folder with ``train/`` (and optionally ``val/``, ``test/``) subfolders: those splits are kept,
  and each is read with the rules below;
* a folder with one subfolder per class (images anywhere below each class folder);
* a flat folder of files named ``label.anything.ext`` (Kaggle Dogs vs Cats: ``cat.123.jpg``).

Files that are not images by extension are listed as skipped; nothing is silently dropped.

File names are bytes on Linux: a name that is not valid UTF-8 is kept exactly (Python's
``surrogateescape`` form, which opens the same file; stores and CSVs write it escaped, see
:func:`featx.utils.escape_name`). A CSV is read the same way, so it may list such names as raw
bytes. A class named by such bytes is labelled with ``\\xHH`` escapes (:func:`featx.utils.printable_name`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from featx.data.decode import IMAGE_EXTENSIONS, is_image_name
from featx.errors import FeatxError
from featx.utils import printable_name

SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class Discovery:
    """What a source holds. ``paths`` are relative to ``root``; ``labels`` index ``label_names``."""

    root: Path
    layout: str
    paths: list[str] = field(default_factory=list)
    label_strings: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    splits: dict[str, list[int]] | None = None  # preset splits: split -> indices into paths
    _label_of: dict[str, str] = field(default_factory=dict, repr=False)  # label text -> the raw name it came from

    def add(self, rel: str, label: str) -> None:
        """Add image ``rel`` of class ``label`` (a folder name or CSV cell, exactly as read)."""
        text = printable_name(label)
        raw = self._label_of.setdefault(text, label)
        if raw != label:
            raise FeatxError(
                f"the classes {os.fsencode(raw)!r} and {os.fsencode(label)!r} in {self.root} would both be "
                f"labelled {text!r}; rename one of them"
            )
        self.paths.append(rel)
        self.label_strings.append(text)

    @property
    def label_names(self) -> list[str]:
        return sorted(set(self.label_strings))

    @property
    def labels(self) -> list[int]:
        index = {n: i for i, n in enumerate(self.label_names)}
        return [index[s] for s in self.label_strings]

    def abspath(self, i: int) -> str:
        return str(self.root / self.paths[i])

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.label_names, 0)
        for s in self.label_strings:
            counts[s] += 1
        return counts

    def require_classes(self, minimum: int = 2) -> None:
        """Raise a one-line error unless there are images of at least ``minimum`` classes."""
        if not self.paths:
            raise FeatxError(
                f"no images found in {self.root} (layout: {self.layout}; extensions: "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}; {len(self.skipped)} other files skipped)"
            )
        names = self.label_names
        if len(names) < minimum:
            raise FeatxError(
                f"found only {len(names)} class ({names[0]!r}) in {self.root}: need at least {minimum} "
                "(one subfolder per class, 'label.N.jpg' names, or a CSV of path,label)"
            )


class FolderGuard:
    """Decides which folders a walk that follows symlinks may enter: each real folder once.

    Folders are keyed by ``(st_dev, st_ino)``. A folder reached through a symlink is skipped when
    it is an enclosing folder (a loop: ``cat/loop -> ..``), a folder of the source that is scanned
    at its own path (``cat/dogs -> ../dog`` would count dog images twice, labelled cat), or a
    folder already scanned through another link. Each skip is recorded with its reason.
    """

    def __init__(self, scan_roots: list[Path], skipped: list[dict], rel, *, enclosing: Path | None = None):
        self.scan_roots = list(scan_roots)
        self.skipped = skipped
        self.rel = rel
        self.visited: dict[tuple[int, int], str] = {}
        self._via_link: set[str] = set()
        self._real: dict[tuple[int, int], str] | None = None
        self._enclosing = enclosing

    @staticmethod
    def _key(path) -> tuple[int, int]:
        st = os.stat(path)
        return st.st_dev, st.st_ino

    def _real_dirs(self) -> dict[tuple[int, int], str]:
        """Every folder of the source reachable without following links (computed at the first link)."""
        if self._real is None:
            real: dict[tuple[int, int], str] = {}
            if self._enclosing is not None:  # the source folder and the folders above it
                for p in (self._enclosing, *self._enclosing.parents):
                    try:
                        real.setdefault(self._key(p), str(p))
                    except OSError:
                        pass
            for root in self.scan_roots:
                if os.path.islink(root):
                    continue
                for dirpath, _, _ in os.walk(root):
                    try:
                        real.setdefault(self._key(dirpath), dirpath)
                    except OSError:
                        pass
            self._real = real
        return self._real

    def _skip(self, path: str, reason: str) -> bool:
        self.skipped.append({"path": self.rel(path), "reason": reason})
        return False

    def enter(self, path: str | os.PathLike, parent: str | None = None) -> bool:
        """True if the walk should go into ``path`` (reached from ``parent``, None for a scan root)."""
        path = str(path)
        try:
            key = self._key(path)
        except OSError as e:
            return self._skip(path, f"unreadable folder ({e.strerror or e})")
        via_link = os.path.islink(path) or (parent is not None and parent in self._via_link)
        if via_link:
            real = self._real_dirs().get(key)
            if real is not None and real != path:
                if path.startswith(real.rstrip(os.sep) + os.sep) or Path(real) in Path(path).parents:
                    return self._skip(path, f"symlink loop (points back to the enclosing folder {self.rel(real)})")
                return self._skip(path, f"link to {self.rel(real)}, which is scanned at its own path")
        if key in self.visited:
            seen = self.visited[key]
            if path.startswith(seen.rstrip(os.sep) + os.sep):
                return self._skip(path, f"symlink loop (points back to the enclosing folder {self.rel(seen)})")
            return self._skip(path, f"link to a folder already scanned as {self.rel(seen)}")
        self.visited[key] = path
        if via_link:
            self._via_link.add(path)
        return True

    def walk_files(self, folder: Path) -> list[Path]:
        """Files below ``folder`` in sorted order, following symlinks into each real folder once."""
        if not self.enter(folder):
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames.sort()
            dirnames[:] = [n for n in dirnames if self.enter(os.path.join(dirpath, n), dirpath)]
            out.extend(Path(dirpath) / f for f in sorted(filenames))
        return out


def _relative_to(root: Path):
    """Paths in skip records: relative to the source folder (the folder itself by its own path)."""
    return lambda p: os.path.relpath(p, root) if os.path.abspath(p) != str(root) else str(root)


def _rel(path: str, root: str) -> str:
    """``os.path.relpath(path, root)`` for a path found by listing below ``root`` (absolute): the
    name after ``root/`` (relpath's two abspath calls cost more than the listing itself)."""
    head = root.rstrip(os.sep) + os.sep
    tail = path[len(head):]
    if path.startswith(head) and tail and ".." not in tail.split(os.sep):
        return tail
    return os.path.relpath(path, root)


def _listing(folder: Path) -> tuple[list[os.DirEntry], list[os.DirEntry]]:
    """``(folders, files)`` in ``folder``, by name (what ``sorted(folder.iterdir())`` with
    ``is_dir()`` / ``is_file()`` gives): one ``scandir``, the entry types it reports (no ``stat``
    per file), names compared as strings, not as ``Path`` objects."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    dirs, files = [], []
    for e in entries:
        (dirs if e.is_dir() else files if e.is_file() else []).append(e)
    return dirs, files


def _add_file(d: Discovery, path: Path | str, label: str | None, name: str | None = None) -> None:
    rel = _rel(str(path), str(d.root))
    name = name if name is not None else os.path.basename(path)
    if not is_image_name(name):
        ext = Path(name).suffix.lower() or "no extension"
        d.skipped.append({"path": rel, "reason": f"not an image file ({ext})"})
    elif label is None:
        d.skipped.append({"path": rel, "reason": "no label in the file name (expected 'label.N.ext')"})
    else:
        d.add(rel, label)


def _scan_folder(d: Discovery, folder: Path, guard: FolderGuard | None = None) -> str:
    """Add the images of ``folder`` (class folders or flat names) to ``d``; return the layout."""
    dirs, files = _listing(folder)
    subdirs = [folder / e.name for e in dirs if not e.name.startswith(".")]
    if subdirs:
        guard = guard or FolderGuard(subdirs, d.skipped, _relative_to(d.root), enclosing=d.root)
        for sub in subdirs:
            for f in guard.walk_files(sub):
                _add_file(d, f, sub.name)
        for f in files:
            d.skipped.append({"path": _rel(f.path, str(d.root)), "reason": "not inside a class folder"})
        return "class folders"
    for f in files:
        stem = f.name
        label = stem.split(".", 1)[0] if stem.count(".") >= 2 else None
        _add_file(d, f.path, label or None, stem)
    return "label.N file names"


def _from_csv(csv_path: Path) -> Discovery:
    d = Discovery(root=csv_path.parent.resolve(), layout="csv")
    try:
        # bytes that are not UTF-8 stand for themselves (a file name listed as raw bytes)
        with open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FeatxError(f"cannot read CSV {csv_path}: {e}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    for lineno, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise FeatxError(f"{csv_path}:{lineno}: expected 'path,label', got {','.join(row)!r}")
        p = Path(row[0].strip())
        p = p if p.is_absolute() else d.root / p
        if not p.is_file():
            d.skipped.append({"path": row[0].strip(), "reason": "listed in the CSV but missing"})
            continue
        _add_file(d, p, row[1].strip())
    return d


def discover(src: str | os.PathLike) -> Discovery:
    """Find the labelled images in ``src`` (a folder or a CSV file). See the module docstring."""
    src = Path(src)
    if not src.exists():
        raise FeatxError(f"source {src} does not exist")
    if src.is_file():
        if src.suffix.lower() != ".csv":
            raise FeatxError(f"source {src} is a file but not a CSV (expected a folder or a path,label CSV)")
        return _from_csv(src)
    root = src.resolve()
    d = Discovery(root=root, layout="")
    split_dirs = {SPLIT_DIRS[e.name.lower()]: root / e.name for e in _listing(root)[0] if e.name.lower() in SPLIT_DIRS}
    if "train" in split_dirs:
        d.splits = {}
        layouts = set()
        kept = [split_dirs[s] for s in ("train", "val", "test") if s in split_dirs]
        # the class folders of every split: one guard, so no folder is scanned twice across splits
        class_dirs = [e for sd in kept for e in sorted(sd.iterdir()) if e.is_dir() and not e.name.startswith(".")]
        guard = FolderGuard(class_dirs, d.skipped, _relative_to(root), enclosing=root)
        for split in ("train", "val", "test"):
            if split in split_dirs:
                start = len(d.paths)
                if not guard.enter(split_dirs[split]):
                    continue
                layouts.add(_scan_folder(d, split_dirs[split], guard))
                d.splits[split] = list(range(start, len(d.paths)))
        d.layout = "train/val/test folders, " + " + ".join(sorted(layouts))
        return d
    d.layout = _scan_folder(d, root)
    return d


def list_image_files(inputs: list[str | os.PathLike]) -> tuple[list[str], list[dict]]:
    """Expand files and folders (recursively) into image paths, for unlabelled use (``predict``)."""
    paths: list[str] = []
    skipped: list[dict] = []
    dirs = [Path(item) for item in inputs if Path(item).is_dir()]
    guard = FolderGuard(dirs, skipped, str)
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = len(paths)
            for f in guard.walk_files(p):
                (paths.append(str(f)) if is_image_name(f.name) else skipped.append(
                    {"path": str(f), "reason": f"not an image file ({f.suffix.lower() or 'no extension'})"}
                ))
            if len(paths) == found:  # an empty folder beside other inputs is listed, never silently dropped
                skipped.append({"path": str(p), "reason": "no image files in this folder"})
        elif p.is_file():
            paths.append(str(p))
        else:
            skipped.append({"path": str(p), "reason": "does not exist"})
    return paths, skipped
