"""``inspect.html``: the counts, the nearest-neighbour histogram and thumbnails of the top issues.

Rendered from ``templates/inspect.html`` by the report stage's Jinja2 environment
(:func:`featx.report.render_page`: autoescape on, so every class and file name is escaped);
images are inlined, so the page is one self-contained file.
"""

from __future__ import annotations

import io

from featx.inspect.thumbs import Thumbnails


def histogram_png(record: dict) -> bytes | None:
    """The nearest-neighbour similarity histogram of each split, with the threshold, as PNG bytes."""
    near = record.get("nearest") or {}
    if not near.get("counts") or not any(sum(c) for c in near["counts"].values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    edges = np.asarray(near["bins"])
    centers = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, counts in near["counts"].items():
        if sum(counts):
            ax.step(centers, counts, where="mid", label=name)
    t = record["thresholds"]["dup_threshold"]
    ax.axvline(t, color="red", linestyle="--", label=f"threshold {t:g}")
    ax.set_yscale("symlog")
    ax.set_xlabel("cosine similarity to the nearest training row")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def render_inspect(record: dict, label_rows: list[dict], dup_rows: list[dict], splits, *, images=(), top: int = 24) -> str:
    from featx.report import png_data_uri, render_page

    thumbs = Thumbnails(images)
    source = {s.name: s.source for s in splits}

    def thumb(split: str, path: str):
        return thumbs.uri(path, source.get(split))

    issues = [{**r, "thumb": thumb(r["split"], r["path"])} for r in label_rows[:top]]

    def pairs(kind):
        return [{**r, "thumb_a": thumb(r["split_a"], r["path_a"]), "thumb_b": thumb(r["split_b"], r["path_b"])}
                for r in [d for d in dup_rows if d["kind"] == kind][:top]]

    png = histogram_png(record)
    return render_page(
        "inspect.html", package="featx.inspect", title="featx inspect",
        record=record, issues=issues, cross=pairs("cross-split"), within=pairs("within-split"),
        histogram=png_data_uri(png) if png else None, missing=thumbs.missing, top=top,
    )
