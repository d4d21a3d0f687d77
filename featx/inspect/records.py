"""The rows of ``label_issues.csv`` and ``duplicates.csv`` and the per-split entries of ``inspect.json``."""

from __future__ import annotations

import csv
import io

import numpy as np

from featx.inspect.duplicates import Pairs
from featx.inspect.labels import LabelIssues
from featx.inspect.splits import Split
from featx.results.health import accuracy_without

LABEL_COLUMNS = ("rank", "split", "path", "given_label", "suggested_label", "label_quality")
DUP_COLUMNS = ("split_a", "path_a", "label_a", "split_b", "path_b", "label_b", "similarity", "kind", "labels_differ")


def label_rows(issues: LabelIssues, trains: list[Split], names: list[str]) -> list[dict]:
    owner = [(s, k) for s in trains for k in range(len(s))]
    rows = []
    for rank, i in enumerate(issues.indices, start=1):
        s, k = owner[int(i)]
        rows.append({
            "rank": rank, "split": s.name, "path": s.paths[k], "given_label": names[int(s.y[k])],
            "suggested_label": names[int(issues.suggested[i])], "label_quality": round(float(issues.quality[i]), 6),
            "row": k,
        })
    return rows


def dup_rows(results, splits: list[Split], names: list[str]) -> list[dict]:
    by = {s.name: s for s in splits}
    rows = []
    for (a, b), p in results.items():
        sa, sb = by[a], by[b]
        for i, j, sim in zip(p.i.tolist(), p.j.tolist(), p.similarity.tolist()):
            la, lb = names[int(sa.y[i])], names[int(sb.y[j])]
            rows.append({
                "split_a": a, "path_a": sa.paths[i], "label_a": la, "split_b": b, "path_b": sb.paths[j], "label_b": lb,
                "similarity": round(sim, 6), "kind": "within-split" if a == b else "cross-split",
                "labels_differ": la != lb, "row_a": i, "row_b": j,
            })
    rows.sort(key=lambda r: (-r["similarity"], r["kind"], r["split_a"], r["row_a"], r["split_b"], r["row_b"]))
    return rows


def split_records(splits, results, issues, trains, estimator, clf_path) -> list[dict]:
    train_names = {s.name for s in trains}
    flagged = np.zeros(sum(len(s) for s in trains), dtype=bool)
    flagged[issues.indices] = True
    offsets, at = {}, 0
    for s in trains:
        offsets[s.name], at = at, at + len(s)
    recs = []
    for s in splits:
        within = results[(s.name, s.name)]
        cross = sum(len(p) for (a, b), p in results.items() if a != b and s.name in (a, b))
        rec = {"name": s.name, "path": str(s.path.resolve()), "rows": len(s), "train": s.train,
               "label_issues": int(flagged[offsets[s.name] : offsets[s.name] + len(s)].sum()) if s.train else None,
               "within_split_pairs": len(within), "cross_split_pairs": int(cross),
               "rows_with_duplicate_in_train": None, "leaked_rows": None, "accuracy": None}
        if not s.train:
            leaked: set[int] = set()
            for (a, b), p in results.items():
                if a in train_names and b == s.name:
                    leaked.update(p.j.tolist())
                elif b in train_names and a == s.name:
                    leaked.update(p.i.tolist())
            rec["rows_with_duplicate_in_train"] = len(leaked)
            rec["leaked_rows"] = sorted(leaked)
            if estimator is not None:
                pred = np.asarray(estimator.predict(s.X))
                rec["accuracy"] = {"classifier": clf_path, **accuracy_without(s.y, pred, leaked)}
        recs.append(rec)
    return recs


#: Bins of the nearest-neighbour similarity histogram.
HIST_BINS = 50


def nearest_histogram(splits, results) -> dict:
    """Each split's nearest-neighbour similarity to the training rows (itself excluded), as a histogram."""
    trains = [s for s in splits if s.train]
    edges = np.linspace(-1.0, 1.0, 2 * HIST_BINS + 1)
    lo = 0.0
    values = {}
    for s in splits:
        best = np.full(len(s), -np.inf)
        for t in trains:
            if (s.name, t.name) in results:
                best = np.maximum(best, results[(s.name, t.name)].nearest)
            elif (t.name, s.name) in results:  # searched the other way round: nearest of t's rows only
                best = np.maximum(best, column_best(results[(t.name, s.name)], len(s)))
        values[s.name] = best[np.isfinite(best)]
        if len(values[s.name]):
            lo = min(lo, float(np.floor(values[s.name].min() * 10) / 10))
    edges = np.linspace(lo, 1.0, HIST_BINS + 1)
    counts = {name: np.histogram(np.clip(v, lo, 1.0), bins=edges)[0].tolist() for name, v in values.items()}
    quant = {name: {q: round(float(np.quantile(v, q / 100)), 4) for q in (50, 90, 99)} if len(v) else {}
             for name, v in values.items()}
    return {"bins": [round(float(e), 4) for e in edges], "counts": counts, "quantiles": quant,
            "of": "similarity of each row's nearest training row (itself excluded)"}


def column_best(p: Pairs, n: int) -> np.ndarray:
    """Best similarity per searched row, from the pairs only (rows with no pair: -inf)."""
    best = np.full(n, -np.inf)
    np.maximum.at(best, p.j, p.similarity)
    return best


def to_csv(rows: list[dict], columns) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
