"""A model-only checker of resource trees: the invariants of spec §1.5 (I1-I4) and the two
walks the oracles and reports use (``preorder``, ``descendants``).

None of this models a kernel function. The kernel keeps its trees well formed by
construction; the model has to be told, because fuzzed Programs misuse stale pointers
and can build any pointer structure. So every walk here follows child/sibling pointers,
visits each node once and ends on any structure, cyclic or cross-linked.
"""

from __future__ import annotations

from collections.abc import Iterator

from .ioport import U64_MAX, Resource, _s

__all__ = [
    "I1_NESTING",
    "I2_ORDER",
    "I2_OVERLAP",
    "I3_EMPTY",
    "I3_INVERTED",
    "I4_PARENT",
    "I4_SHARED",
    "TreeProblem",
    "descendants",
    "preorder",
    "problem_kind",
    "tree_problems",
]

# Problem kinds tree_problems() reports (the text before the first ":" of each problem).
I1_NESTING = "I1-nesting"  # a child sticks out of its parent's range
I2_ORDER = "I2-order"  # well-formed siblings out of ascending order (disjoint)
I2_OVERLAP = "I2-overlap"  # well-formed siblings overlap
# end == start - 1: adjust_resource(r, s, 0) leaves this by design (B29a). It is empty,
# sorts correctly, and only acts as a zero-width wall at start.
I3_EMPTY = "I3-empty"
# end < start - 1: adjust_resource with a size that wraps past 2^64 (no overflow check).
# Sorted by start like any node, but later requests can then be linked overlapping a
# well-formed sibling ([D], reported as I2-overlap when it happens).
I3_INVERTED = "I3-inverted"
I4_PARENT = "I4-parent"  # a node's parent pointer is not the node whose list holds it
I4_SHARED = "I4-shared"  # a node reached twice: cross-linked or cyclic lists


class TreeProblem(str):
    """One tree_problems() entry: ``"<kind>: <text>"``, a str with its kind as ``.kind``."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        return self.partition(":")[0]


def problem_kind(problem: str) -> str:
    """The kind of one tree_problems() entry, e.g. ``"I3-empty"``."""
    return problem.partition(":")[0]


def _node_text(res: Resource) -> str:
    return f"{_s(res.name)!r} [0x{res.start:x}-0x{res.end:x}]"


def tree_problems(root: Resource) -> list[TreeProblem]:
    """Check the tree under ``root`` against spec §1.5 I1–I4; empty when all hold.

    Each problem is ``"<kind>: <text>"`` with kind one of I1_NESTING, I2_ORDER, I2_OVERLAP,
    I3_EMPTY, I3_INVERTED, I4_PARENT, I4_SHARED (see problem_kind()). I3 is split because
    an empty node is a documented by-design result of adjust_resource (B29a) that an
    oracle may accept, while an inverted one is not. I2 compares well-formed siblings only
    (each with the previous well-formed one); malformed ones are reported under I3. The walk
    follows child/sibling pointers, visits every node once, and stops a list at a node
    already seen (I4_SHARED), so it ends on any pointer structure. Order: each child list
    in list order, the lists depth first."""
    if _well_formed(root):
        return []
    problems: list[TreeProblem] = []

    def report(kind: str, text: str) -> None:
        problems.append(TreeProblem(f"{kind}: {text}"))

    seen = {id(root)}
    stack = [root]
    while stack:
        parent = stack.pop()
        last: Resource | None = None
        c = parent.child
        kids: list[Resource] = []
        while c is not None:
            if id(c) in seen:
                report(I4_SHARED, f"{_node_text(c)} reached again in the child list of "
                                  f"{_node_text(parent)}")
                break
            seen.add(id(c))
            if c.parent is not parent:
                owner = "NULL" if c.parent is None else _node_text(c.parent)
                report(I4_PARENT, f"{_node_text(c)} is in the child list of "
                                  f"{_node_text(parent)} but its parent is {owner}")
            if c.start < parent.start or c.end > parent.end:
                report(I1_NESTING, f"{_node_text(c)} is not inside its parent "
                                   f"{_node_text(parent)}")
            if c.end < c.start:
                kind = I3_EMPTY if (c.end + 1) & U64_MAX == c.start else I3_INVERTED
                report(kind, f"{_node_text(c)} has end < start")
            else:
                if last is not None and not last.end < c.start:
                    kind = I2_OVERLAP if last.start <= c.end else I2_ORDER
                    report(kind, f"{_node_text(last)} is followed by {_node_text(c)} under "
                                 f"{_node_text(parent)}")
                last = c
            if c.child is not None:
                kids.append(c)
            c = c.sibling
        stack.extend(reversed(kids))
    return problems


def _well_formed(root: Resource) -> bool:
    """True iff tree_problems(root) finds nothing: its walk and its conditions, without
    building any text. The busy-consistency oracle asks after every step in thorough
    mode and the answer is almost always yes, so this is the path that has to be fast."""
    seen = {root}
    stack = [root]
    while stack:
        parent = stack.pop()
        low, high = parent.start, parent.end
        # Every start is >= low by the time it is compared, so this means "no previous
        # well-formed sibling".
        last_end = low - 1
        c = parent.child
        while c is not None:
            if c in seen or c.parent is not parent:
                return False  # I4_SHARED, I4_PARENT
            seen.add(c)
            start, end = c.start, c.end
            if start < low or end > high or end < start or start <= last_end:
                return False  # I1_NESTING, I3_*, I2_*
            last_end = end
            if c.child is not None:
                stack.append(c)
            c = c.sibling
    return True


def preorder(root: Resource) -> Iterator[tuple[Resource, int]]:
    """Yield ``(node, depth)`` for every descendant of ``root`` in pre-order, depth 0 for
    root's children (the /proc/iomem depth before MAX_IORES_LEVEL capping).

    Follows child/sibling pointers (not parent pointers, unlike the kernel's walkers) and
    never yields a node twice, so it ends on any pointer structure; on a well-formed tree
    the order is the kernel's."""
    seen = {id(root)}
    stack: list[tuple[Resource | None, int]] = [(root.child, 0)]
    while stack:
        node, depth = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node, depth
        stack.append((node.sibling, depth))
        stack.append((node.child, depth + 1))


def covering(root: Resource, addr: int) -> list[Resource]:
    """The nodes below ``root`` that hold ``addr``, outermost first (the path a lookup
    descends). Like :func:`preorder` it never visits a node twice, so it ends on the
    cyclic structures a misuse Program can build (B29)."""
    out: list[Resource] = []
    seen = {root}
    node = root.child
    while node is not None and node not in seen:
        seen.add(node)
        if node.start <= addr <= node.end:
            out.append(node)
            node = node.child
        else:
            node = node.sibling
    return out


def descendants(root: Resource) -> list[Resource]:
    """Every descendant of ``root`` in pre-order, as a list: the same nodes and order as
    :func:`preorder` without depths, several times faster (no generator frames).

    Like preorder it never visits a node twice, so it ends on any pointer structure,
    including the broken ones a fuzzed Program can build through a stale struct."""
    out: list[Resource] = []
    append = out.append
    # Resources hash by identity, so the nodes themselves can go in the set: no id()
    # call per node.
    seen = {root}
    add = seen.add
    stack = [root.child]
    pop = stack.pop
    push = stack.append
    while stack:
        node = pop()
        while node is not None:
            if node in seen:
                break
            add(node)
            append(node)
            if node.sibling is not None:
                push(node.sibling)
            node = node.child
    return out
