"""What every stage records and ``featx report`` reads: scores, the metrics JSON, end-to-end costs.

* :mod:`~featx.results.metrics`: rank-k and per-class scores (scikit-learn's metrics), the metrics
  record (``featx.metrics/1``) and its read/write;
* :mod:`~featx.results.costs`: what extracting features cost (the ``extract_timing`` attr), carried
  into a classifier's record and shown as end-to-end time and throughput.

It sits below the stages: ``fit``, ``evaluate`` and ``report`` all import it, it imports none of them.
"""

from featx.results.costs import (
    ATTR_TIMING,
    evaluation_costs,
    fit_costs,
    pipeline_rate,
    read_timing,
    transfer_cells,
)
from featx.results.metrics import SCHEMA, make_metrics, rank_k, read_metrics, score, write_metrics

__all__ = [
    "ATTR_TIMING",
    "SCHEMA",
    "evaluation_costs",
    "fit_costs",
    "make_metrics",
    "pipeline_rate",
    "rank_k",
    "read_metrics",
    "read_timing",
    "score",
    "transfer_cells",
    "write_metrics",
]
