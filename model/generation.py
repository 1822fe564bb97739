"""The tree code's change counter: how often it wrote a Resource field others may see.

Model-only bookkeeping with no kernel counterpart. The whole-state oracles re-walk the
resource trees only when :func:`generation` moved since their last look, so every write
the tree code (model/ioport.py, model/resource.py and its continuations) makes to a
field of a Resource someone else may already see (a node linked in a tree, a struct the
caller passed in) calls :func:`changed` first. Writes to a struct that code allocated
and has not handed out yet are not counted: nobody can have seen them. Outside that code
only model/machine.py (building a new tree) and model/pci.py (a device's BAR resources)
write Resource fields, and, as in the kernel, only to a node that is not linked or in
the same call as a tree function that linked or unlinked it: nothing but the tree code
changes a linked node behind its back.

The counter is process-wide, over all trees: equal numbers mean no tree operation
changed a node in between.
"""

from __future__ import annotations

__all__ = ["changed", "generation"]

_generation = 0


def changed() -> None:
    """Count one write to a published Resource field (call it before the write)."""
    global _generation
    _generation += 1


def generation() -> int:
    """Changes the tree code made to published Resource fields so far, in any tree (see
    ``_generation``): equal numbers mean no tree operation changed a node in between."""
    return _generation
