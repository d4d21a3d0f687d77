"""The report's table as Markdown and as one self-contained HTML page (plots inlined, every string escaped)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from featx import __version__
from featx.report.tables import COLUMNS


def render_markdown(table: list[dict], warnings: list[str], plots: dict[str, Path], best: str | None) -> str:
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
    for title, p in plots.items():
        lines += [f"## {title}", "", f"![{title}]({p.name})", ""]
    lines.append(f"_featx {__version__}_")
    return "\n".join(lines) + "\n"


def render_html(table: list[dict], warnings: list[str], plots: dict[str, Path], best: str | None) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>featx report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}.na{color:#888}.warn{background:#fff3cd;",
        "border:1px solid #e0b000;padding:8px;margin:8px 0}img{max-width:100%}</style></head><body>",
        "<h1>featx report</h1>",
    ]
    parts += [f"<div class='warn'><b>WARNING:</b> {esc(w)}</div>" for w in warnings]
    if best:
        parts.append(f"<p><b>Best method: {esc(best)}</b></p>")
    parts.append("<table><tr>" + "".join(f"<th>{esc(t)}</th>" for _, t in COLUMNS) + "</tr>")
    for row in table:
        tds = "".join(
            f"<td class='na'>{esc(row[k])}</td>" if row[k].startswith("n/a") else f"<td>{esc(row[k])}</td>"
            for k, _ in COLUMNS
        )
        parts.append(f"<tr>{tds}</tr>")
    parts.append("</table>")
    for title, p in plots.items():
        b64 = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{b64}'>")
    parts.append(f"<p><small>featx {__version__}</small></p></body></html>")
    return "\n".join(parts) + "\n"
