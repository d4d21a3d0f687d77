"""HTML pages from Jinja2 templates that escape every value by default (``autoescape``).

Shared by the pages featx writes (``featx report``'s ``report.html``, ``featx inspect``'s
``inspect.html``): every page extends ``base.html`` (one style sheet, the version footer) and
inlines its images as ``data:`` URIs, so a page is one self-contained file. Class names come from
folder names and file names from users: nothing reaches the page unescaped, because the
environment escapes every ``{{ value }}`` (only our own CSS is marked safe).

* :func:`render_page`: a template of this package or of another stage's ``templates/`` folder;
* :func:`data_uri` / :func:`png_data_uri`: bytes -> a ``data:`` URI for ``<img src>``.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path

#: The style every featx page shares.
CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.na{color:#888}.warn{background:#fff3cd;"
    "border:1px solid #e0b000;padding:8px;margin:8px 0}img{max-width:100%}"
)


@functools.cache
def environment(package: str = "featx.report"):
    """A Jinja2 environment that escapes by default, loading ``package``'s ``templates/`` folder
    first and this package's (``base.html``) second."""
    import jinja2
    import markupsafe

    loaders = [jinja2.PackageLoader(package, "templates")]
    if package != "featx.report":
        loaders.append(jinja2.PackageLoader("featx.report", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["css"] = markupsafe.Markup(CSS)
    env.filters["pct"] = lambda v, digits=2: "n/a" if v is None else f"{100 * float(v):.{digits}f}%"
    return env


def render_page(template: str, *, package: str = "featx.report", **context) -> str:
    """Render ``template`` (a file in ``package``'s ``templates/`` folder) with ``context``."""
    from featx import __version__

    return environment(package).get_template(template).render(version=__version__, **context)


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` for inlining ``data`` in a page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_data_uri(path_or_bytes: bytes | str | os.PathLike) -> str:
    """A PNG file (or its bytes) as a ``data:image/png`` URI."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return data_uri(data, "image/png")
