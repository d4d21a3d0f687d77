"""``featx report``: gather metrics records -> table cells -> plots -> Markdown / HTML / JSON.

* :mod:`~featx.report.gather`: find and read the records, one row per method;
* :mod:`~featx.report.tables`: a record's display cells (:data:`COLUMNS`);
* :mod:`~featx.report.plots`: accuracy, training curves and confusion matrix as PNG;
* :mod:`~featx.report.render`: the Markdown table and the self-contained, escaped HTML page;
* :mod:`~featx.report.api`: :func:`make_report`, which ties them together and writes the files.
"""

from featx.report.api import REPORT_FILES, ReportResult, make_report
from featx.report.gather import Row, gather
from featx.report.tables import COLUMNS, cells

__all__ = ["COLUMNS", "REPORT_FILES", "ReportResult", "Row", "cells", "gather", "make_report"]
