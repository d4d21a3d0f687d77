"""``featx inspect``: label issues, near-duplicates and train/test leakage, from the features featx has.

* :mod:`~featx.inspect.splits`: features files in, one split each, checked against each other;
* :mod:`~featx.inspect.labels`: out-of-fold probabilities of ``featx fit``'s model, then cleanlab;
* :mod:`~featx.inspect.duplicates`: exact cosine search in blocks (faiss, or NumPy without it);
* :mod:`~featx.inspect.thumbs` and :mod:`~featx.inspect.page`: the self-contained ``inspect.html``;
* :mod:`~featx.inspect.records`: the CSV rows and the per-split entries of ``inspect.json``;
* :mod:`~featx.inspect.api`: :func:`inspect_features`, which ties them together and writes the files.

Importing this package imports neither scikit-learn, cleanlab, faiss nor TensorFlow.
"""

from featx.inspect.api import (
    DEFAULT_TOP,
    INSPECT_FILES,
    InspectResult,
    check_output,
    inspect_features,
)
from featx.inspect.duplicates import (
    DEFAULT_DUP_THRESHOLD,
    ENGINES,
    FAISS_INSTALL,
    normalize,
    search_pairs,
)
from featx.inspect.labels import QUICK_GRID, label_issues, out_of_fold_proba

__all__ = [
    "DEFAULT_DUP_THRESHOLD",
    "DEFAULT_TOP",
    "ENGINES",
    "FAISS_INSTALL",
    "INSPECT_FILES",
    "QUICK_GRID",
    "InspectResult",
    "check_output",
    "inspect_features",
    "label_issues",
    "normalize",
    "out_of_fold_proba",
    "search_pairs",
]
