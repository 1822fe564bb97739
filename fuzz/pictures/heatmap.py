"""The matrix as a heat map: profiles down (grouped by question), reproducers across.

Drawn from :func:`iomemfuzz.fuzz.matrix_report.heatmap_data`. Each cell carries a glyph
(the number of signatures for a finding), so the picture reads in grey too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iomemfuzz.fuzz.matrix import BY_DESIGN, CLEAN, FINDING, NOT_APPLICABLE, NOT_RUN, OTHER
from iomemfuzz.fuzz.pictures import AMBER, DARK_RED, GREY, INK, LIGHT_RED, PALE, pyplot, save

STYLE = {  # state: (fill, text colour, glyph, legend)
    FINDING: (DARK_RED, "white", None, "finding (number of signatures)"),
    OTHER: (LIGHT_RED, INK, "o", "finding of another catalog entry"),
    BY_DESIGN: (AMBER, INK, "D", "accepted by design"),
    CLEAN: (PALE, "#777777", "·", "clean"),
    NOT_APPLICABLE: (GREY, INK, "–", "not applicable (contract, missing, conflict)"),
    NOT_RUN: ("white", INK, "", "not run (planted profile)"),
}


def draw(data: dict[str, Any], path: str | Path) -> Path:
    plt = pyplot()
    from matplotlib.patches import Patch, Rectangle

    columns = data["columns"]
    lines: list[tuple[str, Any]] = []  # ("group", title) or ("row", row)
    for g in data["groups"]:
        lines.append(("group", g["title"]))
        lines += [("row", r) for r in g["rows"]]
    cw, rh = 0.42, 0.30  # inches per column and per line
    fig = plt.figure(figsize=(3.4 + cw * len(columns), 1.6 + rh * len(lines)))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(-8.2, len(columns) + 0.2)
    ax.set_ylim(len(lines) + 2.4, -1.6)
    ax.axis("off")
    for x, key in enumerate(columns):
        ax.text(x + 0.5, -0.2, key, ha="center", va="bottom", fontsize=8.5,
                fontweight="bold", rotation=90 if len(key) > 4 else 0)
    for y, (kind, item) in enumerate(lines):
        if kind == "group":
            ax.text(-8.1, y + 0.72, item, ha="left", va="bottom", fontsize=9.5,
                    fontweight="bold", color=INK)
            ax.plot([-8.1, len(columns)], [y + 0.95, y + 0.95], color=INK, lw=0.6)
            continue
        label = item["profile"] + (f"  ({item['role']})" if item["role"] else "")
        ax.text(-0.15, y + 0.5, label, ha="right", va="center", fontsize=8)
        for x, (state, count) in enumerate(zip(item["states"], item["counts"], strict=True)):
            fill, ink, glyph, _ = STYLE[state]
            ax.add_patch(Rectangle((x + 0.04, y + 0.06), 0.92, 0.88, facecolor=fill,
                                   edgecolor="#999999" if state == NOT_RUN else "white",
                                   lw=0.4, hatch="///" if state == NOT_APPLICABLE else None))
            text = str(count) if glyph is None else glyph
            if text:
                ax.text(x + 0.5, y + 0.52, text, ha="center", va="center", fontsize=8,
                        color=ink, fontweight="bold" if state == FINDING else "normal")
    ax.text(-8.1, -1.2, "iomemfuzz matrix: catalog reproducers (across) on kernel profiles "
            "(down), grouped by the question each group answers", fontsize=11,
            fontweight="bold", ha="left", va="center")
    handles = [Patch(facecolor=fill, edgecolor="#999999", label=legend,
                     hatch="///" if state == NOT_APPLICABLE else None)
               for state, (fill, _, _, legend) in STYLE.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8.5,
               bbox_to_anchor=(0.5, 0.0))
    return save(fig, path)
