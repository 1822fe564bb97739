"""The generated documents and pictures under docs/, and the check that they are current.

``iomemfuzz matrix --write-docs`` and ``tools/update_docs.py`` call :func:`write_docs`:
docs/MATRIX.md and docs/matrix.json from the matrix, the heat map, and the example
pictures the README and MATRIX.md show. Pictures are not compared pixel by pixel (fonts
and library versions move pixels): docs/pictures.json records, for each picture, the
SHA-256 of the data it was drawn from, and :func:`stale` recomputes that data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iomemfuzz.fuzz import fuzz_stats, iomem_map, lanes
from iomemfuzz.fuzz.matrix import Matrix, compute, digest
from iomemfuzz.fuzz.matrix_report import heatmap_data, json_text, markdown
from iomemfuzz.fuzz.program_file import read_program

MANIFEST = "pictures.json"
MATRIX_MD = "MATRIX.md"
MATRIX_JSON = "matrix.json"
HEATMAPS = ("matrix.svg", "matrix.png")
# The example progress data: a real job's stats.json, committed (fuzzing is not
# repeatable enough to regenerate it in a test).
FUZZ_STATS = "fuzz-stats.json"


@dataclass(frozen=True, slots=True)
class Example:
    """One example picture in docs/: its file, what it shows, and how to redraw it."""

    name: str
    kind: str  # "lanes", "iomem" or "progress"
    source: str  # from the repository root
    step: int | None = None
    command: str = ""
    caption: str = ""


EXAMPLES: tuple[Example, ...] = (
    Example("race-b1.svg", "lanes",
            "corpus/findings/v6.1-deb/b1-pci-sysfs-init-meets-async-bus-add.prog",
            command="iomemfuzz show --lanes corpus/findings/v6.1-deb/"
                    "b1-pci-sysfs-init-meets-async-bus-add.prog -o docs/race-b1.svg",
            caption="B1's race, one lane per kernel task (`iomemfuzz show --lanes`)"),
    Example("iomem-b15-claim.svg", "iomem",
            "corpus/findings/v6.1-deb/b15-claim-revokes-mapping.prog", 2,
            command="iomemfuzz show --iomem 2 corpus/findings/v6.1-deb/"
                    "b15-claim-revokes-mapping.prog -o docs/iomem-b15-claim.svg",
            caption="B15's claim revoking a /dev/mem mapping, /proc/iomem before and after "
                    "(`iomemfuzz show --iomem 2`)"),
    Example("fuzz-progress.svg", "progress", "docs/" + FUZZ_STATS,
            command="iomemfuzz plot docs/fuzz-stats.json -o docs/fuzz-progress.svg",
            caption="a two-minute fuzz job's coverage and findings (`iomemfuzz plot`)"),
)


def captions() -> list[tuple[str, str]]:
    """(file, caption) of each example, for docs/MATRIX.md."""
    return [(ex.name, ex.caption) for ex in EXAMPLES]


def example_data(ex: Example, root: Path) -> Any:
    """The data ``ex`` is drawn from."""
    if ex.kind == "lanes":
        return lanes.data(lanes.record(read_program(str(root / ex.source))))
    if ex.kind == "iomem":
        assert ex.step is not None
        return iomem_map.data(read_program(str(root / ex.source)), ex.step)
    if ex.kind == "progress":
        from iomemfuzz.fuzz.pictures.progress import plot_data

        return plot_data([fuzz_stats.load(root / ex.source)])
    raise ValueError(f"unknown example kind {ex.kind!r}")


def _drawer(kind: str) -> Callable[[Any, Path], Path]:
    if kind == "lanes":
        from iomemfuzz.fuzz.pictures.lanes import draw
    elif kind == "iomem":
        from iomemfuzz.fuzz.pictures.iomem import draw
    elif kind == "progress":
        from iomemfuzz.fuzz.pictures.progress import draw
    else:
        from iomemfuzz.fuzz.pictures.heatmap import draw
    return draw


def write_docs(root: Path, matrix: Matrix | None = None,
               say: Callable[[str], None] = print) -> list[Path]:
    """Regenerate every generated document and picture under ``root``/docs."""
    docs = root / "docs"
    m = matrix if matrix is not None else compute(root=root)
    written = []
    for name, text in ((MATRIX_MD, markdown(m, examples=captions())), (MATRIX_JSON, json_text(m))):
        (docs / name).write_text(text, encoding="utf-8")
        written.append(docs / name)
    manifest: dict[str, dict[str, str]] = {}
    heat = heatmap_data(m)
    for name in HEATMAPS:
        written.append(_drawer("heatmap")(heat, docs / name))
        manifest[name] = {"data_sha256": digest(heat),
                          "drawn_by": "iomemfuzz matrix --write-docs"}
    for ex in EXAMPLES:
        if ex.kind == "progress" and not (root / ex.source).is_file():
            say(f"skipped {ex.name}: no {ex.source}")
            continue
        data = example_data(ex, root)
        written.append(_drawer(ex.kind)(data, docs / ex.name))
        manifest[ex.name] = {"data_sha256": digest(data), "drawn_by": ex.command}
    (docs / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                 encoding="utf-8")
    written.append(docs / MANIFEST)
    for path in written:
        say(f"updated {path.relative_to(root)}")
    return written


def stale(root: Path, matrix: Matrix | None = None) -> list[str]:
    """What is out of date under ``root``/docs, in words (empty: everything is current)."""
    docs = root / "docs"
    m = matrix if matrix is not None else compute(root=root)
    out = []
    for name, text in ((MATRIX_MD, markdown(m, examples=captions())), (MATRIX_JSON, json_text(m))):
        path = docs / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(f"docs/{name} differs from the matrix")
    try:
        manifest = json.loads((docs / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [*out, f"docs/{MANIFEST} is missing or unreadable"]
    wanted = {name: digest(heatmap_data(m)) for name in HEATMAPS}
    for ex in EXAMPLES:
        wanted[ex.name] = digest(example_data(ex, root))
    for name, sha in wanted.items():
        if not (docs / name).is_file():
            out.append(f"docs/{name} is missing")
        elif manifest.get(name, {}).get("data_sha256") != sha:
            out.append(f"docs/{name} was drawn from other data than the current")
    return out
