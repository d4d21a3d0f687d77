"""The report's table as Markdown and as one self-contained HTML page (plots inlined, every string escaped
by the Jinja2 templates of :mod:`featx.report.html`)."""

from __future__ import annotations

from pathlib import Path

from featx import __version__
from featx.report.tables import COLUMNS


def render_markdown(table: list[dict], warnings: list[str], plots: dict[str, Path], best: str | None,
                    health: dict | None = None) -> str:
    lines = ["# featx report", ""]
    for w in warnings:
        lines.append(f"> **WARNING:** {w}")
    if warnings:
        lines.append("")
    if best:
        lines += [f"**Best method: {best}**", ""]
    lines.append("| " + " | ".join(t for _, t in COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for row in table:
        lines.append("| " + " | ".join(row[k] for k, _ in COLUMNS) + " |")
    lines.append("")
    if health:
        from featx.report.health import markdown_lines

        lines += markdown_lines(health)
    for title, p in plots.items():
        lines += [f"## {title}", "", f"![{title}]({p.name})", ""]
    lines.append(f"_featx {__version__}_")
    return "\n".join(lines) + "\n"


def render_html(table: list[dict], warnings: list[str], plots: dict[str, Path], best: str | None,
                health: dict | None = None) -> str:
    """The report page (``templates/report.html``, escaped by Jinja2's autoescape; plots inlined)."""
    from featx.report.html import png_data_uri, render_page

    return render_page("report.html", title="featx report", table=table, warnings=warnings, best=best,
                       columns=COLUMNS, plots=[(t, png_data_uri(p)) for t, p in plots.items()], health=health)
