"""The resource tree stays well formed and its busy regions are exactly the ones some
caller believes it holds.

Kernel promise (kernel/resource.c): children nest inside their parent, siblings are
ordered and disjoint, back-links are right (spec §1.5); a driver that claimed a region
holds it until it releases it, and a release gives back exactly what was claimed. The
kernel keeps no owner record (``__release_region`` matches by range only), so the model's
claim ledger supplies what callers believe, and this oracle compares the two:

* ``i1-nesting``, ``i2-overlap``, ``i3-empty``, ...: an invariant of §1.5 broke (the
  checker's problem kind; ``i3-empty`` is adjust_resource's by-design empty node, B29a);
* ``release-without-claim``: a release matched no busy region ("Trying to free
  nonexistent resource"), e.g. a wrong size (B16);
* ``busy-without-claim``: a busy region nobody believes in any more (it leaked);
* ``claim-lost``: a caller still believes in a claim that someone else removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation
from iomemfuzz.model.event import RELEASE_NONEXISTENT
from iomemfuzz.model.resource import (
    IORESOURCE_BUSY,
    descendants,
    problem_kind,
    tree_problems,
)

NAME = "busy-consistency"
FAMILY = "busy-resource consistency"
_NORMAL = re.compile(r"[^a-z0-9]+")


def _problem_kind(problem: object) -> str:
    """``I2_OVERLAP: ...`` -> ``i2-overlap``."""
    kind = problem_kind(str(problem))
    return _NORMAL.sub("-", kind.lower()).strip("-") or "malformed-tree"


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    for e in step.events:
        if e.kind == RELEASE_NONEXISTENT:
            yield Violation(NAME, "release-without-claim", e.text, "B16")


def check_state(kernel) -> Iterator[Violation]:
    resources = kernel.resources
    for root in (resources.iomem_resource, resources.ioport_resource):
        for problem in tree_problems(root):
            yield Violation(NAME, _problem_kind(problem), str(problem))
    believed = kernel.believed_busy()
    baseline = kernel.baseline_busy
    for root in (resources.iomem_resource, resources.ioport_resource):
        # descendants(): preorder()'s nodes in its order, without a generator frame per
        # node (thorough mode runs this after every step).
        for node in descendants(root):
            if node.flags & IORESOURCE_BUSY:
                key = id(node)
                if key not in believed and key not in baseline:
                    yield Violation(NAME, "busy-without-claim",
                                    f"busy region {node!r} is held by no caller")
    for claim in kernel.claims.values():
        if claim.lost_by is not None:
            yield Violation(NAME, "claim-lost",
                            f"{claim.holder} still believes it holds {claim.node!r}, "
                            f"which {claim.lost_by} removed")
