"""``featx report``: gather metrics records -> table cells -> plots -> Markdown / HTML / JSON.

* :mod:`~featx.report.gather`: find and read the records, one row per method;
* :mod:`~featx.report.tables`: a record's display cells (:data:`COLUMNS`);
* :mod:`~featx.report.plots`: accuracy, training curves and confusion matrix as PNG;
* :mod:`~featx.report.render`: the Markdown table and the self-contained, escaped HTML page;
* :mod:`~featx.report.html`: Jinja2 pages that escape by default (shared with ``featx inspect``);
* :mod:`~featx.report.api`: :func:`make_report`, which ties them together and writes the files.
"""

from featx.report.api import REPORT_FILES, ReportResult, make_report
from featx.report.gather import Row, gather
from featx.report.html import data_uri, png_data_uri, render_page
from featx.report.tables import COLUMNS, cells

__all__ = [
    "COLUMNS",
    "REPORT_FILES",
    "ReportResult",
    "Row",
    "cells",
    "data_uri",
    "gather",
    "make_report",
    "png_data_uri",
    "render_page",
]
