"""The claim ledger: which busy regions the modelled callers believe they hold.

The kernel keeps no such record (``__release_region`` matches by range, with no owner
check), which is exactly why the busy-consistency oracle needs one to compare the tree
against, and why the mapping oracles can tell a driver's claim from firmware's. The
ledger is the Kernel's observer (model/kernel.py): the door tells it what each caller
did, once per call, and nothing else writes it.

It also keeps what the oracles remember between steps of one run (``memo``) and the
counters that tell them whether anything they read changed since: both die with the
kernel they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iomemfuzz.fuzz.contract import broken_rule
from iomemfuzz.model.generation import generation
from iomemfuzz.model.ioport import IORESOURCE_BUSY, Resource
from iomemfuzz.model.kernel import Kernel, Observer
from iomemfuzz.model.machine import Machine
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.resource_check import descendants


@dataclass(slots=True)
class Claim:
    """A busy region some caller believes it holds."""

    node: Resource
    holder: str
    # The kernel function that made the busy node ("__request_region",
    # "insert_resource", ...): how the caller got it decides how it gives it back, and
    # whether anything was revoked.
    how: str = ""
    # Who made the region vanish while its holder still believed in it (None = live),
    # and with which kernel function.
    lost_by: str | None = None
    lost_call: str = ""
    # When the claim was made (Mm.tick()): the mapping oracles order it against the
    # mmaps and revocations around it.
    at: int = 0
    # The range when it was made (adjust_resource may move or grow it later).
    start: int = 0
    end: int = -1


class Ledger(Observer):
    """The Kernel observer that keeps the claim ledger."""

    __slots__ = ("_synced", "baseline_busy", "breaches", "claims", "generation",
                 "given_back", "last_call", "memo", "orphans", "structs",
                 "unmatched_releases")

    def __init__(self) -> None:
        # Keyed by the node itself (Resources hash by identity): ids would not survive a
        # copy of the kernel (fuzz/snapshot.py), and a held node keeps its key unique.
        self.claims: dict[Resource, Claim] = {}
        # Structs a caller linked with request_resource, insert_resource, ... (busy or
        # not), by the caller that owns them: what it may release, remove or adjust.
        self.structs: dict[Resource, str] = {}
        # Contract rules broken by lines that ran anyway (profiles with driver_misuse):
        # "call: rule", in order.
        self.breaches: list[str] = []
        # Busy nodes firmware and boot made: held by no modelled caller, legitimate.
        self.baseline_busy: set[Resource] = set()
        # Releases that matched nothing: (caller, start, n, why).
        self.unmatched_releases: list[tuple[str, int, int, str]] = []
        # Regions callers gave back: (caller, root, start, end), to tell a second release.
        self.given_back: set[tuple[str, Resource, int, int]] = set()
        # Busy nodes a caller stopped believing in while they stayed in the tree:
        # node -> (the call, why). What busy-without-claim reports them as.
        self.orphans: dict[Resource, tuple[str, str]] = {}
        # The last kernel function a caller changed the tree with.
        self.last_call = ""
        # Bumped by every change to the ledger (claims, their lost_by, baseline_busy): the
        # busy-consistency oracle re-checks only when this or the trees moved.
        self.generation = 0
        # (tree generation, ledger generation) after the last sync pass.
        self._synced: tuple[int, int] | None = None
        # Answers the whole-state oracles derived from this kernel's state, kept for
        # their next look (by oracle name).
        self.memo: dict[str, object] = {}

    # --- what the door tells ----------------------------------------------------------

    def attach(self, kernel: Kernel) -> None:
        """Busy nodes that exist now belong to firmware/boot, not to a modelled caller."""
        self.generation += 1
        self.baseline_busy = {
            node for root in kernel.roots for node in descendants(root)
            if node.flags & IORESOURCE_BUSY
        }

    def refuse(self, kernel: Kernel, call: str, caller: str, args: dict[str, Any]
               ) -> str | None:
        """The driver contract (fuzz/contract.py): the rule ``call`` would break, which
        refuses it, unless the profile lets callers misuse the API (then the breach is
        recorded and the call runs)."""
        rule = broken_rule(kernel, self, call, caller, args)
        if rule is None:
            return None
        if kernel.profile.driver_misuse:
            self.breaches.append(f"{call}: {rule.name}")
            return None
        return rule.name

    def claimed(self, kernel: Kernel, node: Resource, caller: str, call: str) -> None:
        self.generation += 1
        self.claims[node] = Claim(node, caller, call, at=kernel.mm.tick(),
                                  start=node.start, end=node.end)

    def linked(self, kernel: Kernel, node: Resource, caller: str, call: str) -> None:
        """A caller linked its own struct; if it carries BUSY, the caller holds it."""
        self.structs[node] = caller
        if node.flags & IORESOURCE_BUSY:
            self.claimed(kernel, node, caller, call)

    def kernel_owned(self, kernel: Kernel, node: Resource) -> None:
        self.generation += 1
        self.baseline_busy.add(node)

    def released(self, kernel: Kernel, root: Resource, start: int, n: int, caller: str,
                 matched: bool) -> None:
        """The caller gives up its belief in the claim at (root, start) whether or not
        the kernel found a match: a wrong size leaves a busy node nobody believes in."""
        end = start + n - 1
        if not matched:
            why = "never-requested"
            if (caller, root, start, end) in self.given_back:
                why = "released-twice"
            for key, claim in list(self.claims.items()):
                if claim.node.start != start or _root(claim.node) is not root:
                    continue
                if claim.holder == caller:
                    why = "wrong-size"
                    self.generation += 1
                    del self.claims[key]
                    self.orphans[key] = ("__release_region", "wrong-size-release")
                    break
                if claim.node.end == end and why == "never-requested":
                    why = "not-the-holder"
            self.unmatched_releases.append((caller, start, n, why))
        else:
            self.given_back.add((caller, root, start, end))
        self.tree_changed(kernel, caller, "__release_region")

    def splitting(self, kernel: Kernel, start: int, size: int) -> object:
        """Each busy node memory hot-unplug may trim or split, with its owner: the call
        shrinks the original node in place, so afterwards a split's high piece lies
        outside it."""
        owners: list[tuple[int, int, str | None]] = []
        before: set[Resource] = set()
        for node in descendants(kernel.resources.iomem_resource):
            if node.flags & IORESOURCE_BUSY and node.start <= start + size - 1 \
                    and node.end >= start:
                claim = self.claims.get(node)
                owner = claim.holder if claim else (
                    None if node in self.baseline_busy else "")
                owners.append((node.start, node.end, owner))
                before.add(node)
        return owners, before

    def split(self, kernel: Kernel, before: Any, caller: str) -> None:
        """Trimming or splitting a busy node leaves pieces the kernel allocated itself;
        they still belong to whoever held the original node (firmware or a caller), so
        the ledger hands them over instead of reporting them as held by nobody."""
        owners, seen = before
        for node in descendants(kernel.resources.iomem_resource):
            if not node.flags & IORESOURCE_BUSY or node in seen:
                continue
            origin = next((o for lo, hi, o in owners
                           if lo <= node.start and node.end <= hi), "")
            if origin is None:
                self.kernel_owned(kernel, node)
            elif origin:
                self.claimed(kernel, node, origin, "release_mem_region_adjustable")
        self.tree_changed(kernel, caller, "release_mem_region_adjustable")

    def tree_changed(self, kernel: Kernel, caller: str, call: str) -> None:
        """After ``caller`` changed the tree: drop the claims it gave up, mark the ones
        it took away from someone else as lost."""
        # After a pass every claim is lost or in the tree; while no tree link and no
        # claim changed since (only the tree code writes links), that still holds and a
        # pass would change nothing.
        self.last_call = call
        if self._synced == (generation(), self.generation):
            return
        for key, claim in list(self.claims.items()):
            if claim.lost_by is not None or kernel.in_tree(claim.node):
                continue
            self.generation += 1
            if claim.holder == caller:
                del self.claims[key]
            else:
                claim.lost_by = caller
                claim.lost_call = call
        self._synced = (generation(), self.generation)

    # --- what the oracles read --------------------------------------------------------

    def believed_busy(self) -> set[Resource]:
        """Busy nodes the ledger says some caller holds (live claims only)."""
        return {node for node, claim in self.claims.items() if claim.lost_by is None}


def _root(node: Resource) -> Resource:
    while node.parent is not None:
        node = node.parent
    return node


def ledger(kernel: Kernel) -> Ledger:
    """The kernel's ledger (every kernel the executor runs has one)."""
    obs = kernel.observer
    assert isinstance(obs, Ledger), "this kernel was built without the claim ledger"
    return obs


def watched_kernel(profile: KernelProfile | None = None, machine: Machine | None = None,
                   booted: bool = True) -> Kernel:
    """A Kernel built from scratch with a fresh claim ledger watching it: what every run
    of the executor starts from (as a copy, fuzz/snapshot.py)."""
    return Kernel(profile, machine, booted=booted, observer=Ledger())
