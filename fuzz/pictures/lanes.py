"""The race as swimlanes: one lane per kernel task, time running down the page.

Drawn from :func:`iomemfuzz.fuzz.lanes.data`. Left, the Program lines (each bracketing
the rows it caused); middle, one lane per task with a mark for each slice it ran; right,
the point the task reached after that slice and what the kernel logged during it. A
violation gets a red cross on the lane that logged it and its signature on its own row.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from iomemfuzz.fuzz.pictures import DARK_RED, INK, pyplot, save

# Lane colours (Okabe-Ito, readable by colour-blind readers); lanes are also told apart
# by position, so colour only helps.
LANE_COLOURS = ("#555555", "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9",
                "#d55e00", "#f0e442")
ROW = 0.25  # inches per row
PROGRAM_W = 3.3  # inches: the Program column
LANE_W = 0.62
POINT_W = 4.9
LOG_W = 4.3
LOG_CHARS = 78
PROGRAM_CHARS = 44


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def draw(data: dict[str, Any], path: str | Path, *, title: str = "") -> Path:
    plt = pyplot()
    rows = data["rows"]
    lanes = {t["id"]: i for i, t in enumerate(data["tasks"])}
    lanes_x = PROGRAM_W + 0.25
    point_x = lanes_x + LANE_W * len(lanes) + 0.2
    log_x = point_x + POINT_W
    width = log_x + LOG_W
    head = 2.35  # inches above the first row: title and lane names
    height = head + ROW * (len(rows) + 1.5)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")

    def y(row: int) -> float:
        return head + ROW * (row + 0.5)

    ax.text(0.1, 0.3, title or f"{data['catalog'] or 'run'} on {data['profile']}: which "
            "kernel task ran when", fontsize=12, fontweight="bold", va="center")
    ax.text(0.1, 0.62, "Time runs down. Each mark is one slice a task ran up to its next "
            "preemption point (named on the right, with what the kernel logged meanwhile).",
            fontsize=8.5, va="center", color="#444444")
    # Lane headers and lifelines.
    for t in data["tasks"]:
        i = lanes[t["id"]]
        x = lanes_x + LANE_W * (i + 0.5)
        colour = LANE_COLOURS[i % len(LANE_COLOURS)]
        mine = [r for r, row in enumerate(rows) if row["task"] == t["id"]]
        label = "Program (no task)" if t["id"] == 0 else f"task {t['id']}: {t['name']}"
        ax.text(x - 0.05, head - 0.12, _short(label, 34), rotation=45, ha="left",
                va="bottom", fontsize=7.5, color=colour, fontweight="bold",
                rotation_mode="anchor")
        if mine:
            ax.plot([x, x], [y(mine[0]), y(mine[-1])], color=colour, lw=1.0, alpha=0.5,
                    ls=":" if t["id"] == 0 else "-")
    ax.text(point_x, head - 0.12, "point reached", fontsize=8.5, fontweight="bold")
    ax.text(log_x, head - 0.12, "kernel log during the slice", fontsize=8.5,
            fontweight="bold")
    # Program lines: alternate shading so each line's rows read as one block.
    for n, ln in enumerate(data["lines"]):
        a, b = ln["rows"]
        top, bottom = y(a) - ROW / 2, y(b) + ROW / 2
        if n % 2 == 0:
            ax.axhspan(top, bottom, xmin=0, xmax=1, color="#f0f0f0", zorder=0, lw=0)
        label = f"[{ln['index']}] {ln['text']}" if ln["outcome"] else ln["text"]
        wrapped = textwrap.wrap(label, PROGRAM_CHARS, break_on_hyphens=False,
                                subsequent_indent="    ")
        room = max(1, b - a + 1)
        if len(wrapped) > room:
            wrapped = [*wrapped[:room - 1], _short(" ".join(wrapped[room - 1:]),
                                                    PROGRAM_CHARS)] if room > 1 else \
                [_short(label, PROGRAM_CHARS + 8)]
        ax.text(0.1, top + 0.04, "\n".join(wrapped), va="top", fontsize=7.5,
                family="DejaVu Sans Mono", linespacing=1.45)
        ax.plot([PROGRAM_W, PROGRAM_W], [top + 0.03, bottom - 0.03], color="#888888", lw=1)
    marked = -1  # the last slice row, where a violation's cross goes
    for r, row in enumerate(rows):
        i = lanes[row["task"]]
        x = lanes_x + LANE_W * (i + 0.5)
        colour = LANE_COLOURS[i % len(LANE_COLOURS)]
        yy = y(r)
        kind = row["kind"]
        if kind == "violation":
            if marked >= 0:
                ax.plot([x], [y(marked)], marker="X", ms=11, color=DARK_RED, zorder=5)
            ax.text(point_x, yy, f"✗ {row['signature']}  [{row['class']}]", color=DARK_RED,
                    fontsize=7.8, fontweight="bold", va="center")
            continue
        marked = -1
        if kind == "gap":
            ax.text(x, yy, "⋮", ha="center", va="center", fontsize=11, color=colour)
            ax.text(point_x, yy, f"… {row['count']} more slices, nothing logged",
                    fontsize=7.5, color="#666666", style="italic", va="center")
            continue
        marked = r
        marker = "s" if kind == "call" else ("D" if row["state"] == "done" else "o")
        ax.plot([x], [yy], marker=marker, ms=5, color=colour, zorder=4)
        ax.plot([x, point_x - 0.05], [yy, yy], color=colour, lw=0.4, alpha=0.6)
        ax.text(point_x, yy, _short(row["point"], 86), fontsize=7.5, va="center",
                color=INK)
        if row["events"]:
            more = f"  (+{len(row['events']) - 1})" if len(row["events"]) > 1 else ""
            ax.text(log_x, yy, _short(row["events"][0], LOG_CHARS) + more, fontsize=7.2,
                    va="center", color=DARK_RED if _alarming(row["events"][0]) else "#444444")
    return save(fig, path)


def _alarming(text: str) -> bool:
    return text.startswith(("BUG", "WARN", "INFO: task", "sysfs: cannot", "proc_dir_entry"))
