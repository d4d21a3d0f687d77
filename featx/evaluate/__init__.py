"""``featx evaluate``: rank-1 / rank-5 of a trained network (single crop and ten-crop) or of an
exported classifier on features, written as the metrics record ``featx report`` reads.

Scores and the record itself live in :mod:`featx.results` (shared with ``featx fit``).
"""

from featx.evaluate.api import (
    EvalResult,
    default_output,
    evaluate,
    evaluate_classifier,
    evaluate_network,
    predict_images,
)

__all__ = ["EvalResult", "default_output", "evaluate", "evaluate_classifier", "evaluate_network", "predict_images"]
