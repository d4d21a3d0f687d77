"""The report's "Data health" section, from ``featx inspect`` results among the report's inputs.

For every inspected split: its rows, label issues, near-duplicate pairs and the rows that have a
near-duplicate in training (leakage). For every method scored on an inspected split: the reported
rank-1 beside the rank-1 with the leaked rows removed, taken from the inspect record when it
scored the same classifier (``featx inspect --classifier`` / ``featx fit --inspect``), else
recomputed here for a transfer classifier (its file and the split's features are read again). A
scratch network's per-row predictions are not recorded, so its cell says so instead of guessing.
"""

from __future__ import annotations

from pathlib import Path

from featx.results.health import INSPECT_JSON, accuracy_without, is_inspect_record, read_inspect


def find_records(inputs) -> list[tuple[dict, Path]]:
    """The inspect records among ``inputs`` (``inspect.json`` files, or folders searched recursively)."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob(INSPECT_JSON) if is_inspect_record(q)))
        elif is_inspect_record(p):
            found.append(p)
    seen, out = set(), []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append((read_inspect(f), f))
    return out


def _resolved(path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return str(path)


def _recompute(record: dict, split: dict) -> dict | None:
    """A transfer classifier's rank-1 on ``split`` with and without its leaked rows, or None."""
    from featx.errors import FeatxError
    from featx.fit import full_proba, load_classifier, load_features

    model = (record.get("model") or {}).get("path")
    if not model or not Path(model).is_file() or not Path(split["path"]).is_file():
        return None
    try:
        estimator, manifest = load_classifier(model)
        X, y, _, _ = load_features(split["path"])
    except FeatxError:
        return None
    if len(y) != split["rows"]:
        return None
    pred = full_proba(estimator, X, len(manifest.get("label_names") or [])).argmax(axis=1)
    return accuracy_without(y, pred, split.get("leaked_rows") or [])


def health_section(records: list[tuple[dict, Path]], rows) -> dict | None:
    """``{"splits": [...], "accuracy": [...]}`` for the report, or None without inspect records."""
    if not records:
        return None
    splits, accuracy = [], []
    by_path: dict[str, tuple[dict, dict]] = {}
    for rec, source in records:
        for s in rec.get("splits") or []:
            leaked = s.get("rows_with_duplicate_in_train")
            splits.append({
                "inspect": str(source.parent), "split": s["name"], "rows": s["rows"], "train": bool(s.get("train")),
                "label_issues": s.get("label_issues"), "within_split_pairs": s.get("within_split_pairs"),
                "cross_split_pairs": s.get("cross_split_pairs"), "leaked_rows": leaked,
                "leaked_share": (leaked / s["rows"]) if leaked is not None and s["rows"] else None,
                "threshold": (rec.get("thresholds") or {}).get("dup_threshold"),
            })
            if not s.get("train"):
                by_path[_resolved(s.get("path"))] = (rec, s)
    for row in rows:
        r = row.record
        data = r.get("data") or {}
        hit = by_path.get(_resolved(data.get("path")))
        if hit is None:
            continue
        _, s = hit
        reported = (r.get("single_crop") or {}).get("rank1")
        acc = s.get("accuracy")
        how = "featx inspect"
        if not acc or _resolved(acc.get("classifier")) != _resolved((r.get("model") or {}).get("path")):
            acc, how = (_recompute(r, s), "recomputed by featx report") if r.get("kind") == "transfer" else (None, None)
        accuracy.append({
            "method": row.method, "split": s["name"], "rows": s["rows"], "leaked_rows": s.get("rows_with_duplicate_in_train"),
            "reported_rank1": reported,
            "rank1_without_leaked": acc.get("rank1_without_leaked") if acc else None,
            "rows_without_leaked": acc.get("rows_without_leaked") if acc else None,
            "how": how if acc else "n/a: per-row predictions are not recorded for this method",
        })
    return {"splits": splits, "accuracy": accuracy}


def markdown_lines(health: dict) -> list[str]:
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f}%"

    lines = ["## Data health", "",
             "| Split | Rows | Training | Label issues | Within-split pairs | Cross-split pairs | Rows with a near-duplicate in training |",
             "|---|---|---|---|---|---|---|"]
    for s in health["splits"]:
        leak = "n/a: training" if s["leaked_rows"] is None else f"{s['leaked_rows']} ({pct(s['leaked_share'])})"
        lines.append(f"| {s['split']} | {s['rows']} | {'yes' if s['train'] else 'no'} | "
                     f"{'n/a' if s['label_issues'] is None else s['label_issues']} | {s['within_split_pairs']} | "
                     f"{s['cross_split_pairs']} | {leak} |")
    if health["accuracy"]:
        lines += ["", "| Method | Split | Rank-1 (reported) | Rank-1 without leaked rows | How |", "|---|---|---|---|---|"]
        for a in health["accuracy"]:
            kept = f" ({a['rows_without_leaked']} rows)" if a["rows_without_leaked"] is not None else ""
            lines.append(f"| {a['method']} | {a['split']} | {pct(a['reported_rank1'])} | "
                         f"{pct(a['rank1_without_leaked'])}{kept} | {a['how']} |")
    return lines + [""]

