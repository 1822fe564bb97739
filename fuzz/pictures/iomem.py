"""/proc/iomem before and after a step as nested bars; claimed and mapped ranges marked.

Drawn from :func:`iomemfuzz.fuzz.iomem_map.data`. One row per tree depth, a last row
for the user mappings (their live pages filled, revoked pages hatched). The address axis
is not to scale: every range between two consecutive boundaries gets a width that grows
with the logarithm of its size, so a 4 KiB claim inside a 1 GiB window stays visible;
the ticks give the real addresses.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from iomemfuzz.fuzz.pictures import AMBER, BLUE, INK, LIGHT_BLUE, pyplot, save

FIG_W = 13.0  # inches
ROW_H = 0.42
CHARS_PER_INCH = 13.5  # at the label font size


def _bounds(data: dict[str, Any]) -> list[int]:
    edges: set[int] = set()
    for snap in (data["before"], data["after"]):
        for n in snap["nodes"]:
            edges.update((n["start"], n["end"] + 1))
        for m in snap["mappings"]:
            edges.update((m["start"], m["end"] + 1))
            for lo, hi in m["live"]:
                edges.update((lo, hi + 1))
    return sorted(edges)


def _axis(edges: list[int]) -> dict[int, float]:
    """Boundary -> position: each gap is 1 + log2(size) / 6 wide (see the docstring)."""
    pos = {edges[0]: 0.0} if edges else {}
    for a, b in itertools.pairwise(edges):
        pos[b] = pos[a] + 1 + math.log2(max(1, b - a)) / 6
    return pos


def _label(name: str, lo: int, hi: int, width_in: float, extra: str = "") -> str:
    full = f"{name} [{lo:#x}-{hi:#x}]{extra}"
    room = int(width_in * CHARS_PER_INCH)
    for text in (full, f"{name}{extra}", name):
        if len(text) <= room:
            return text
    return name[:room - 1] + "…" if room >= 4 else ""


def draw(data: dict[str, Any], path: str | Path) -> Path:
    plt = pyplot()
    from matplotlib.patches import Patch, Rectangle

    edges = _bounds(data)
    pos = _axis(edges)
    span = max(pos.values()) if pos else 1.0
    scale = FIG_W / span  # inches per axis unit
    depth = 1 + max((n["depth"] for s in ("before", "after") for n in data[s]["nodes"]),
                    default=0)
    rows = depth + 1  # the tree, then the mappings
    fig, axes = plt.subplots(2, 1, figsize=(FIG_W + 1.6, 2 * rows * ROW_H + 2.6),
                             sharex=True, gridspec_kw={"hspace": 0.35})
    keys_before = {(n["start"], n["end"], n["name"], n["busy"]) for n in data["before"]["nodes"]}
    keys_after = {(n["start"], n["end"], n["name"], n["busy"]) for n in data["after"]["nodes"]}
    for ax, which, other in ((axes[0], "before", keys_after), (axes[1], "after", keys_before)):
        snap = data[which]
        ax.set_ylim(rows, 0)
        ax.set_xlim(0, span)
        ax.set_yticks([r + 0.5 for r in range(rows)])
        ax.set_yticklabels([f"depth {d}" for d in range(depth)] + ["user mappings"],
                           fontsize=8)
        ax.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"{which} [{data['step']}] {data['op']}" + (
            f"  ->  {data['outcome']}" if which == "after" else ""), loc="left", fontsize=10,
            family="DejaVu Sans Mono")
        for n in snap["nodes"]:
            x0, x1 = pos[n["start"]], pos[n["end"] + 1]
            changed = (n["start"], n["end"], n["name"], n["busy"]) not in other
            extra = ""
            if changed:
                extra = " (new)" if which == "after" else " (gone after)"
            ax.add_patch(Rectangle(
                (x0, n["depth"] + 0.08), x1 - x0, 0.84,
                facecolor=AMBER if n["busy"] else LIGHT_BLUE,
                edgecolor=INK if changed else "white", lw=2.0 if changed else 0.8,
                ls="--" if changed and which == "before" else "-",
                hatch="xx" if n["busy"] else None))
            text = _label(n["name"], n["start"], n["end"], (x1 - x0) * scale, extra)
            if text:
                ax.text((x0 + x1) / 2, n["depth"] + 0.5, text, ha="center", va="center",
                        fontsize=7.2, color=INK, fontweight="bold" if n["busy"] else "normal",
                        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 0.6}
                        if n["busy"] else None)
        for m in snap["mappings"]:
            x0, x1 = pos[m["start"]], pos[m["end"] + 1]
            ax.add_patch(Rectangle((x0, depth + 0.1), x1 - x0, 0.8, facecolor="white",
                                   edgecolor=BLUE, lw=1.2, hatch="//"))
            for lo, hi in m["live"]:
                ax.add_patch(Rectangle((pos[lo], depth + 0.1), pos[hi + 1] - pos[lo], 0.8,
                                       facecolor=BLUE, edgecolor=BLUE))
            state = "live" if m["live"] else "revoked"
            ax.text((x0 + x1) / 2, depth + 0.5,
                    _label(f"vma{m['vma']} pid{m['pid']} {m['path']}", m["start"], m["end"],
                           (x1 - x0) * scale + 1.5, f" {state}"),
                    ha="center", va="center", fontsize=7.2, color=INK,
                    bbox={"facecolor": "white", "alpha": 0.85, "lw": 0, "pad": 0.8})
    ticks = sorted(pos.items())
    axes[1].set_xticks([p for _, p in ticks])
    axes[1].set_xticklabels([f"{a:#x}" for a, _ in ticks], rotation=90, fontsize=6.5,
                            family="DejaVu Sans Mono")
    axes[0].tick_params(axis="x", length=0)
    handles = [Patch(facecolor=LIGHT_BLUE, label="resource (not busy)"),
               Patch(facecolor=AMBER, hatch="xx", label="claimed (IORESOURCE_BUSY)"),
               Patch(facecolor=BLUE, label="user mapping: live pages"),
               Patch(facecolor="white", edgecolor=BLUE, hatch="//",
                     label="user mapping: revoked / no PTE"),
               Patch(facecolor="white", edgecolor=INK, lw=2, label="changed by the step")]
    fig.legend(handles=handles, loc="upper center", ncol=5, frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 0.0))
    what = f"{data['catalog']} on {data['profile']}" if data["catalog"] else data["profile"]
    fig.suptitle(f"/proc/iomem around step [{data['step']}] ({what}); address axis not "
                 "to scale (log of each gap), ticks are real addresses", x=0.02, ha="left",
                 fontsize=11, fontweight="bold")
    return save(fig, path)
