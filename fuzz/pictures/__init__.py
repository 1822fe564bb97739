"""Pictures: the matrix heat map, the race lanes, /proc/iomem bars, a fuzz job's progress.

Each picture is drawn from plain data (dicts and lists, JSON-serialisable) that a module
outside this package computes, so the data can be tested without drawing and a committed
picture can be checked against a digest of the data it was drawn from (docs.py).

matplotlib is the library: it is maintained, writes PNG and SVG from one figure with no
browser or external renderer (plotly needs kaleido/Chrome, bokeh a browser for PNG), and
draws the custom layouts here (swimlanes, nested bars) with plain patches. It is imported
only by the commands that draw (:func:`pyplot`), never on the fuzzing path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Print-friendly colours that stay apart in grey and for colour-blind readers (ColorBrewer
# RdYlBu ends plus greys); every picture also writes a glyph or label on each mark, so
# nothing depends on colour alone.
DARK_RED = "#b2182b"
LIGHT_RED = "#f4a582"
AMBER = "#fdb863"
PALE = "#f7f7f7"
GREY = "#bababa"
BLUE = "#2166ac"
LIGHT_BLUE = "#92c5de"
INK = "#222222"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, with settings that make output repeatable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.hashsalt": "iomemfuzz",  # stable ids in SVG output
        "svg.fonttype": "none",  # text stays text: smaller files, searchable, selectable
        "font.family": "DejaVu Sans",
        "font.size": 9,
        "axes.titlesize": 11,
        "figure.dpi": 100,
    })
    return plt


def save(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG or SVG (by the suffix) without dates or versions, so the same
    data gives the same file; close it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise ValueError(f"{path}: a picture is .png or .svg")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Date": None, "Creator": None} if suffix == ".svg" else {"Software": None}
    fig.savefig(path, dpi=dpi, metadata=metadata, bbox_inches="tight", pad_inches=0.15)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
