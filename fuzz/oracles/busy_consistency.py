"""The resource tree stays well formed and its busy regions are exactly the ones some
caller believes it holds.

Kernel promise (kernel/resource.c): children nest inside their parent, siblings are
ordered and disjoint, back-links are right (spec §1.5); a driver that claimed a region
holds it until it releases it, and a release gives back exactly what was claimed. The
kernel keeps no owner record (``__release_region`` matches by range only), so the model's
claim ledger supplies what callers believe, and this oracle compares the two:

* ``i1-nesting``, ``i2-overlap``, ``i3-empty``, ...: an invariant of §1.5 broke (the
  checker's problem kind; ``i3-empty`` is adjust_resource's by-design empty node, B29a),
  titled with the last kernel function that changed the tree;
* ``release-without-claim``: a release matched no busy region ("Trying to free
  nonexistent resource"), in ``__release_region``, and why: the caller held the region
  with another length (``wrong-size``, B16), released it before (``released-twice``),
  someone else holds it (``not-the-holder``) or nobody ever did (``never-requested``);
* ``busy-without-claim``: a busy region nobody believes in any more (it leaked), titled
  with the call that left it behind and how;
* ``claim-lost``: a caller still believes in a claim that someone else removed, titled
  with the kernel function that removed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation, slug
from iomemfuzz.fuzz.ledger import ledger
from iomemfuzz.model.event import RELEASE_NONEXISTENT
from iomemfuzz.model.ioport import IORESOURCE_BUSY, Resource
from iomemfuzz.model.resource_check import descendants, problem_kind, tree_problems

NAME = "busy-consistency"
FAMILY = "busy-resource consistency"
EVENTS_ONLY = True
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
            unmatched = ledger(kernel).unmatched_releases
            why = unmatched[-1][3] if unmatched else "never-requested"
            yield Violation(NAME, "release-without-claim", e.text, "B16",
                            "__release_region", why)


def check_state(kernel) -> tuple[Violation, ...]:
    """state_violations(), answered from the last check on this kernel while nothing it
    reads has changed since: thorough mode asks after every step, and most steps change
    neither the trees nor the ledger. The memo lives in the kernel's ledger, so it dies
    with it."""
    # Nothing outside the door and the kernel paths changes a linked node: the Kernel
    # tells the ledger after every call that may have changed a tree (its tree_clock),
    # and kernel paths (probe, hot-add, remove) run only inside a scheduler slice. Other
    # model code writes a node in place only while it is unlinked or right after a tree
    # call that linked or unlinked it (as the kernel does: model/pci_setup_res.py sets a
    # BAR's range and flags before claiming or assigning it). So with the three counts
    # unchanged nothing this walks has moved. A malformed tree can reach a node whose
    # parent is NULL, so such an answer is not kept.
    book = ledger(kernel)
    counts = (book.tree_clock, kernel.sched.slices_run, book.generation)
    memo = book.memo.get(NAME)
    if memo is not None and memo[0] == counts:
        return memo[1]
    busy = _busy_nodes(kernel)
    found = tuple(_violations(kernel, busy))
    book.memo[NAME] = (counts, found) if None not in busy else None
    return found


def state_violations(kernel) -> Iterator[Violation]:
    """The whole-state check itself, without the memo."""
    return _violations(kernel, _busy_nodes(kernel))


def _busy_nodes(kernel) -> list[list[Resource] | None]:
    """Per root, its busy nodes in pre-order if the tree is well formed, else None: one
    walk answers both questions (almost always)."""
    resources = kernel.resources
    return [_well_formed_busy(root)
            for root in (resources.iomem_resource, resources.ioport_resource)]


def _well_formed_busy(root: Resource) -> list[Resource] | None:
    """The busy descendants of ``root`` in pre-order if tree_problems(root) finds
    nothing; None if it would find something.

    One walk instead of model/resource.py's ``_well_formed`` and then
    :func:`descendants`: the same conditions on the same (node, list owner, previous
    sibling) triples, visited in pre-order. Either walk covers every reachable node
    unless it stops at a problem, so both give the same verdict, and on a well-formed
    tree pre-order is descendants()'s order. (It lives here, not in the model, because
    it models nothing: the fuzz targets instrument only the model.)

    Unlike those walks it keeps no set of visited nodes, because the other conditions
    already fail at the first node reached twice: within one walk of a child list the
    ends strictly increase (start > previous end, end >= start), so a node met again
    there fails the order check; a node met in the lists of two different owners has
    the wrong parent in one of them; and a list walked twice means its owner was
    reached twice before it, which leads back to the root, the only list walked
    without reaching its owner: hence the one identity check, on the root. Every node
    is thus visited at most once and the verdict is the same."""
    out: list[Resource] = []
    # (next node of a child list, the list's owner, end of the node before it).
    stack: list[tuple[Resource | None, Resource, int]] = [(root.child, root, root.start - 1)]
    while stack:
        c, parent, last_end = stack.pop()
        low, high = parent.start, parent.end
        while c is not None:
            if c.parent is not parent or c is root:
                return None  # I4-parent, I4-shared
            start, end = c.start, c.end
            if start < low or end > high or end < start or start <= last_end:
                return None  # I1-nesting, I3-*, I2-*
            if c.flags & IORESOURCE_BUSY:
                out.append(c)
            if c.child is not None:
                # The rest of this list after c's subtree (pre-order).
                stack.append((c.sibling, parent, end))
                parent, low, high, last_end = c, start, end, start - 1
                c = c.child
                continue
            last_end = end
            c = c.sibling
    return out


def _violations(kernel, busy: list[list[Resource] | None]) -> Iterator[Violation]:
    resources = kernel.resources
    roots = (resources.iomem_resource, resources.ioport_resource)
    book = ledger(kernel)
    for root, nodes in zip(roots, busy, strict=True):
        if nodes is None:
            for problem in tree_problems(root):
                yield Violation(NAME, _problem_kind(problem), str(problem), "",
                                slug(book.last_call or "unknown"))
    believed = book.believed_busy()
    baseline = book.baseline_busy
    for root, nodes in zip(roots, busy, strict=True):
        if nodes is None:
            # descendants(): preorder()'s nodes in its order.
            nodes = [node for node in descendants(root) if node.flags & IORESOURCE_BUSY]
        for node in nodes:
            if node not in believed and node not in baseline:
                call, why = book.orphans.get(node, (book.last_call or "unknown", ""))
                yield Violation(NAME, "busy-without-claim",
                                f"busy region {node!r} is held by no caller", "",
                                slug(call), why)
    for claim in book.claims.values():
        if claim.lost_by is not None:
            yield Violation(NAME, "claim-lost",
                            f"{claim.holder} still believes it holds {claim.node!r}, "
                            f"which {claim.lost_by} removed with {claim.lost_call}",
                            _LOST_CATALOG.get(claim.lost_call, ""),
                            slug(claim.lost_call or "unknown"))


# Catalog entries of claims lost by one kernel path: a device's removal frees its BARs with
# every claim inside them (BD9).
_LOST_CATALOG = {"pci_stop_and_remove_bus_device": "BD9"}

# What each kind and mechanism means, for the triage table (docs/FINDINGS.md).
KINDS = {
    "release-without-claim": "a release matches no busy region",
    "busy-without-claim": "a busy region is left that nobody holds",
    "claim-lost": "a caller's claim vanished while it still holds it",
    "i1-nesting": "a node lies outside its parent",
    "i2-order": "siblings are out of order",
    "i2-overlap": "siblings overlap",
    "i3-empty": "a node is empty (end = start - 1)",
    "i3-inverted": "a node ends before it starts",
    "i4-parent": "a node's parent pointer is wrong",
    "i4-shared": "a node is linked twice",
}
WHY = {
    "wrong-size": "the caller holds the region with another length",
    "wrong-size-release": "a release with the wrong length dropped the caller's belief",
    "released-twice": "the caller had released it already",
    "not-the-holder": "another caller holds it",
    "never-requested": "nobody ever requested it",
}


def explain(kind: str, function: str, mechanism: str) -> str:
    text = f"{KINDS.get(kind, kind)}, after {function}"
    return f"{text}: {WHY[mechanism]}" if mechanism in WHY else text
