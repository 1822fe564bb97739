"""/proc/iomem and the user mappings before and after one step of a run, as data.

``iomemfuzz show --iomem STEP FILE`` draws it (fuzz/pictures/iomem.py): the resource
tree as nested bars, one row per depth, claimed (busy) ranges and user-mapped pages
highlighted, so what a claim, a removal or a revocation did to the address space can be
seen at a glance. The picture shows the top-level ranges the step changed (or, when it
changed none, those holding user mappings), since the whole address space from 0 to the
64-bit PCI windows does not fit one readable picture.
"""

from __future__ import annotations

from typing import Any

from iomemfuzz.fuzz.executor import Execution, make_kernel
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_format import format_op
from iomemfuzz.model.ioport import IORESOURCE_BUSY, Resource
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.mm import PAGE_SHIFT
from iomemfuzz.model.profile import resolve


class StepError(ValueError):
    """The step number names no line of the Program."""


def _nodes(root: Resource) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(node: Resource, depth: int) -> None:
        for child in node.children():
            out.append({"start": child.start, "end": child.end, "name": child.name or "",
                        "depth": depth, "busy": bool(child.flags & IORESOURCE_BUSY)})
            walk(child, depth + 1)

    walk(root, 0)
    return out


def snapshot(kernel: Kernel) -> dict[str, Any]:
    """The iomem tree (pre-order, with depths) and every user mapping's physical range
    with the byte ranges its live PTEs still reach."""
    maps = []
    for vma in [*kernel.mm.vmas, *kernel.mm.pending]:
        first = vma.pgoff << PAGE_SHIFT
        live = [[(vma.pgoff + lo) << PAGE_SHIFT, ((vma.pgoff + hi + 1) << PAGE_SHIFT) - 1]
                for lo, hi in vma.live_spans()]
        maps.append({"vma": vma.id, "pid": vma.process.pid, "path": vma.path,
                     "start": first, "end": first + vma.size - 1, "live": live})
    return {"nodes": _nodes(kernel.resources.iomem_resource), "mappings": maps}


def _key(n: dict[str, Any]) -> tuple:
    return (n["start"], n["end"], n["name"], n["depth"], n["busy"])


def _tops(snap: dict[str, Any]) -> list[tuple[int, int]]:
    return [(n["start"], n["end"]) for n in snap["nodes"] if n["depth"] == 0]


def _overlapping(tops: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    return [t for t in tops if t[0] <= hi and lo <= t[1]]


def window(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[int, int]]:
    """The top-level ranges to draw: those holding a node or a mapping the step changed;
    else those holding any mapping; else all."""
    tops = sorted(set(_tops(before)) | set(_tops(after)))
    old = {_key(n) for n in before["nodes"]}
    new = {_key(n) for n in after["nodes"]}
    spans = [(k[0], k[1]) for k in old ^ new]
    maps_old = {(m["vma"], m["start"], m["end"], str(m["live"])) for m in before["mappings"]}
    maps_new = {(m["vma"], m["start"], m["end"], str(m["live"])) for m in after["mappings"]}
    spans += [(k[1], k[2]) for k in maps_old ^ maps_new]
    if not spans:
        spans = [(m["start"], m["end"]) for m in after["mappings"] + before["mappings"]]
    if not spans:
        return tops
    chosen: set[tuple[int, int]] = set()
    for lo, hi in spans:
        hits = _overlapping(tops, lo, hi)
        chosen.update(hits or [(lo, hi)])
    return sorted(chosen)


def _clip(snap: dict[str, Any], ranges: list[tuple[int, int]]) -> dict[str, Any]:
    def inside(a: int, b: int) -> bool:
        return any(lo <= b and a <= hi for lo, hi in ranges)

    return {"nodes": [n for n in snap["nodes"] if inside(n["start"], n["end"])],
            "mappings": [m for m in snap["mappings"] if inside(m["start"], m["end"])]}


def data(program: Program, step: int, profile: str | None = None) -> dict[str, Any]:
    """/proc/iomem and the mappings just before line ``step`` of ``program`` runs and
    just after, clipped to :func:`window`."""
    ops = program.ops
    if not 0 <= step < len(ops):
        raise StepError(f"step {step} is not a line of the Program (0..{len(ops) - 1})")
    prof = resolve(profile if profile is not None else program.profile)
    ex = Execution(prof, make_kernel(prof, program, ops))
    binder = None
    handles = 0
    for o in ops[:step]:
        ex.step(o)
        handles += 1 if type(o).BINDS else 0
    if type(ops[step]).BINDS:
        binder = handles
    before = snapshot(ex.kernel)
    st = ex.step(ops[step])
    after = snapshot(ex.kernel)
    ranges = window(before, after)
    return {
        "profile": prof.name,
        "catalog": program.header("catalog") or "",
        "step": step,
        "op": format_op(ops[step], binder),
        "outcome": st.outcome.label if st.outcome else "",
        "events": [e.text for e in st.events],
        "violations": [v.signature for v in st.violations],
        "window": [list(r) for r in ranges],
        "before": _clip(before, ranges),
        "after": _clip(after, ranges),
    }
