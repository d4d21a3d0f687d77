"""Near-duplicates: every pair of rows whose cosine similarity reaches a threshold, found exactly.

Features are L2-normalized (float32), so the cosine similarity is an inner product. The search
runs query block by query block; memory is bounded by one block of similarities, never an
``N x N`` matrix:

* ``faiss`` (``pip install "featx[inspect]"``): ``faiss.knn`` with ``METRIC_INNER_PRODUCT``, the
  exact kernel behind ``IndexFlatIP.search`` (BLAS products in blocks and a heap per query),
  called on the normalized rows as they are (no copy into an index). Each query keeps its
  :data:`TOP_K` best matches; a query whose last match still reaches the threshold may have more,
  and its row is searched again in full (so no pair is ever missed).
* NumPy, when faiss is not installed (or ``engine="numpy"``): the same blocks as plain matrix
  products, tiled over the other rows too, every entry above the threshold kept.

Both engines collect candidates a little below the threshold (:data:`MARGIN`) and then compute
the similarity of every candidate pair again in float64 from the same normalized rows: the pairs
and similarities they return are identical, whatever the BLAS rounding of either engine.
The nearest-neighbour similarity of every query row (its best match, itself excluded) comes with
the pairs, for the histogram that shows where the threshold falls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from featx.errors import FeatxError

#: Cosine similarity from which two rows are called near-duplicates (see the README, "Inspecting
#: a dataset", for how it was chosen).
DEFAULT_DUP_THRESHOLD = 0.95
#: Query rows per block (the block's similarities: BLOCK_ROWS x TILE_ROWS float32 in the NumPy engine).
BLOCK_ROWS = 2048
#: Rows of the searched split per NumPy tile (2048 x 8192 float32 = 64 MiB).
TILE_ROWS = 8192
#: Matches kept per query by faiss before a full search of that row.
TOP_K = 16
#: Candidates are gathered this far below the threshold, then re-scored exactly.
MARGIN = 1e-4
ENGINES = ("auto", "faiss", "numpy")
FAISS_INSTALL = 'pip install "featx[inspect]"'


def normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as a C-contiguous float32 array (all-zero rows stay zero)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(X / norms[:, None].astype(np.float32))


def resolve_engine(engine: str = "auto") -> str:
    """``auto`` -> ``faiss`` when it imports, else ``numpy``; ``faiss`` must import."""
    if engine not in ENGINES:
        raise FeatxError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={engine!r}")
    if engine == "numpy":
        return engine
    try:
        import faiss  # noqa: F401
    except ImportError:
        if engine == "faiss":
            raise FeatxError(f"engine='faiss' needs faiss-cpu, which is not installed: {FAISS_INSTALL}") from None
        return "numpy"
    return "faiss"


@dataclasses.dataclass
class Pairs:
    """Pairs ``(i, j)`` (row ``i`` of the query split, row ``j`` of the searched split) with
    similarity >= the threshold, sorted by similarity (highest first), and each query row's
    nearest-neighbour similarity (``-inf`` when the searched split has no other row)."""

    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray
    nearest: np.ndarray
    nearest_index: np.ndarray

    def __len__(self) -> int:
        return len(self.i)


def search_pairs(
    Q: np.ndarray,
    X: np.ndarray | None = None,
    *,
    threshold: float = DEFAULT_DUP_THRESHOLD,
    engine: str = "auto",
    block_rows: int = BLOCK_ROWS,
    tile_rows: int = TILE_ROWS,
    top_k: int = TOP_K,
    on_block: Callable[[int], None] | None = None,
) -> Pairs:
    """Every pair of a row of ``Q`` and a row of ``X`` with cosine similarity >= ``threshold``.

    ``Q`` and ``X`` are L2-normalized rows (:func:`normalize`). ``X=None`` searches ``Q`` against
    itself: a row is never its own match and each pair comes once, ``i < j``.
    ``on_block(rows)`` is called after each query block (progress).
    """
    if not -1.0 <= threshold <= 1.0:
        raise FeatxError(f"the duplicate threshold is a cosine similarity in [-1, 1]. Received: {threshold}")
    engine = resolve_engine(engine)
    same = X is None
    X = Q if same else X
    if Q.shape[1:] != X.shape[1:]:
        raise FeatxError(f"cannot compare {Q.shape[1]}-d rows with {X.shape[1]}-d rows")
    low = threshold - MARGIN
    nearest = np.full(len(Q), -np.inf, dtype=np.float32)
    nearest_index = np.full(len(Q), -1, dtype=np.int64)
    cand_i: list[np.ndarray] = []
    cand_j: list[np.ndarray] = []
    if len(Q) and len(X):
        step = _faiss_block if engine == "faiss" else _numpy_block
        for a in range(0, len(Q), block_rows):
            b = min(a + block_rows, len(Q))
            ii, jj = step(Q, X, a, b, same, low, nearest, nearest_index, tile_rows=tile_rows, top_k=top_k)
            cand_i.append(ii)
            cand_j.append(jj)
            if on_block is not None:
                on_block(b - a)
    i = np.concatenate(cand_i) if cand_i else np.zeros(0, np.int64)
    j = np.concatenate(cand_j) if cand_j else np.zeros(0, np.int64)
    if same:  # each pair once
        keep = i < j
        i, j = i[keep], j[keep]
    if len(i):
        ij = np.unique(np.stack([i, j], axis=1), axis=0)
        i, j = ij[:, 0], ij[:, 1]
    sim = exact_similarity(Q, X, i, j)
    found = nearest_index >= 0  # the nearest neighbour's similarity re-scored too: engine-independent
    nearest[found] = exact_similarity(Q, X, np.nonzero(found)[0], nearest_index[found])
    keep = sim >= threshold
    i, j, sim = i[keep], j[keep], sim[keep]
    order = np.lexsort((j, i, -sim))
    return Pairs(i[order], j[order], sim[order], nearest, nearest_index)


def exact_similarity(Q: np.ndarray, X: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """``Q[i] . X[j]`` in float64 for each pair (clipped to [-1, 1]): the same on every engine.
    ``chunk`` pairs at a time (2 x chunk x D float64 of temporary memory)."""
    out = np.empty(len(i), dtype=np.float64)
    for a in range(0, len(i), chunk):
        qi = Q[i[a : a + chunk]].astype(np.float64)
        xj = X[j[a : a + chunk]].astype(np.float64)
        out[a : a + chunk] = np.einsum("ij,ij->i", qi, xj)
    return np.clip(out, -1.0, 1.0)


def _numpy_block(Q, X, a, b, same, low, nearest, nearest_index, *, tile_rows, top_k):
    q = Q[a:b]
    ii, jj = [], []
    for c in range(0, len(X), tile_rows):
        d = min(c + tile_rows, len(X))
        S = q @ X[c:d].T
        if same and c < b and a < d:  # a row is not its own neighbour
            rows = np.arange(max(a, c), min(b, d))
            S[rows - a, rows - c] = -np.inf
        best = S.argmax(axis=1)
        val = S[np.arange(len(q)), best]
        better = val > nearest[a:b]
        nearest[a:b][better] = val[better]
        nearest_index[a:b][better] = best[better] + c
        r, k = np.nonzero(S >= low)
        ii.append(r + a)
        jj.append(k + c)
    return np.concatenate(ii), np.concatenate(jj)


def _faiss_block(Q, X, a, b, same, low, nearest, nearest_index, *, tile_rows, top_k):
    import faiss

    q = Q[a:b]
    k = min(len(X), top_k + (1 if same else 0))
    D, idx = faiss.knn(q, X, k, metric=faiss.METRIC_INNER_PRODUCT)
    if same:  # drop the row itself (it need not come first: exact copies tie with it)
        D = np.where(idx == np.arange(a, b)[:, None], -np.inf, D)
    D = np.where(idx < 0, -np.inf, D)
    best = D.argmax(axis=1)
    nearest[a:b] = D[np.arange(len(q)), best]
    nearest_index[a:b] = np.where(np.isfinite(nearest[a:b]), idx[np.arange(len(q)), best], -1)
    r, c = np.nonzero(D >= low)
    ii, jj = [r + a], [idx[r, c]]
    # a query whose k-th match still reaches the threshold may have more: search that row in full
    full = np.nonzero((D >= low).sum(axis=1) >= k - (1 if same else 0))[0] if k < len(X) else []
    for row in full:
        s = X @ q[row]
        if same:
            s[a + row] = -np.inf
        hit = np.nonzero(s >= low)[0]
        ii.append(np.full(len(hit), a + row))
        jj.append(hit)
    return np.concatenate(ii).astype(np.int64), np.concatenate(jj).astype(np.int64)
