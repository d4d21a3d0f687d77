"""Find the metrics records a report compares: one row per method (an evaluation beats a fit's own split)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from featx.errors import FeatxError
from featx.report.tables import headline_score
from featx.results.health import is_inspect_record
from featx.results.metrics import read_metrics


@dataclass
class Row:
    record: dict
    source: Path

    @property
    def method(self) -> str:
        return self.record.get("method") or self.record.get("model", {}).get("name") or self.source.stem


def _is_metrics(path: Path) -> bool:
    name = path.name
    return name.endswith(".metrics.json") or name == "eval.json" or name.endswith(".eval.json")


def gather(inputs: list[str | os.PathLike]) -> list[Row]:
    """Find and read metrics records; one row per method (an evaluation beats a fit's own split)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.json") if _is_metrics(q)))
        elif p.is_file():
            if not is_inspect_record(p):  # featx inspect results: the Data health section reads them
                files.append(p)
        else:
            raise FeatxError(f"{p} does not exist")
    if not files:
        raise FeatxError(
            "no metrics found in " + ", ".join(map(str, inputs))
            + " (expected *.metrics.json from featx fit or eval.json from featx evaluate)"
        )
    rows: dict[str, Row] = {}
    for f in files:
        rec = read_metrics(f)
        key = (rec.get("model") or {}).get("path") or rec.get("method") or str(f)
        prior = rows.get(key)
        is_eval = f.name.endswith("eval.json")
        if prior is None or is_eval:
            rows[key] = Row(rec, f)
    return sorted(rows.values(), key=lambda r: -(headline_score(r.record) or -1))
