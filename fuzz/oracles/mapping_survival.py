"""Once a driver's claim succeeds, no user access reaches a claimed byte; revocation
reaches no further than the profile allows; and a mapping made for one device's BAR
reaches only that BAR.

Kernel promise (3234ac664a87, 636b21b50152: "a driver call to request_mem_region()
becomes a hole-punch on the /dev/mem device"): when ``__request_region`` on the iomem
root succeeds under IO_STRICT_DEVMEM, the driver has the range to itself — user mappings
of it are zapped and new mmaps, reads and writes are refused. Every access through any
kind of mapping (/dev/mem, ``resourceN[_wc]``, procfs, legacy) and every read()/write()
is judged against that. A signature is ``KIND/FUNCTION/MECHANISM``: what the access
reached, the kernel function that let it through, and why, worked out from the state:

(a) exclusivity (only where ``profile.promise_exclusive_after_claim``), kind
``reaches-claimed``:

* a read()/write() of /dev/mem: ``read_mem``/``write_mem``, with why devmem_is_allowed
  still allowed the page (``low-mib``, ``relaxed``, ``exclusive-ignored``) — B5, B19;
* a mapping made after the claim: the mmap handler that let it through (``mmap_mem``
  with devmem_is_allowed's reason; ``pci_mmap_resource``/``checks-bar-start-only``:
  sysfs tests only the BAR's first page; ``proc_bus_pci_mmap``/``no-exclusive-check``
  before v5.12) — B5, B10, B19;
* a mapping made before it that nothing unmapped: ``__request_region``/``no-revoke``
  (no revocation before v5.8, B5); the function that gave the mapping an address space
  revoke_iomem never walks (``outside-iomem-space``, B10, B11a); the function that made
  the busy node without revoking (``insert_resource``, ``request_resource``, ... with
  ``no-revoke-path``, B14); ``adjust_resource``/``grown-without-revoke`` (the byte was
  outside the claim when it was made); ``revoke_iomem`` with the reason it skipped
  (``low-mib``, ``checks-end-pages-only``, ``relaxed``, ``no-inode``, ``io-strict-off``:
  B5, B6, B25);
  ``mmap_region``/``populated-before-link`` (the mapping was populated before the
  revocation walked i_mmap and linked after it, §4.7, BD6); ``unmap_mapping_range``/
  ``page-rounding`` (§4.5, BD7);
* ``driver-bar-unclaimed``: a mapping reached a BAR whose bound driver holds no claim of
  it (``never-claimed``: B13; ``claim-lost``: someone removed it).

(a') STRICT_DEVMEM's own promise: ``devmem-reaches-ram`` (/dev/mem reached System RAM
above 1 MiB: ``devmem_is_allowed``/``nested-ram-invisible``, B18) and
``devmem-low-ram-mapped`` (``mmap_mem``: a mapping shows low-MiB RAM that read()
zero-fills, B22).

(b) reach of revocation (``profile.revoke_granularity``): ``revoke-beyond-claim`` (a
live page outside every page the claim touches was zapped) and, on byte-exact profiles,
``collateral-revocation`` (a zapped page held bytes the claim does not cover that some
process had mapped, B7).

(c) device isolation: a mapping made for device A's BAR N reached something else —
``reaches-other-device``, ``reaches-other-bar`` or ``reaches-memory`` — through the mmap
handler that made it, and why: ``sub-page-bar`` (the BAR is smaller than the page the
mapping exposes, §4.6, BD5), ``survived-removal`` (A was removed and its mappings
survive, §4.8), ``bar-moved`` (A's BAR was moved since), ``removed-still-decodes`` (what
answered is a function the kernel removed, which keeps decoding the range it has given to
A, BD4).

Which of these a kernel accepts "by design" is profile data (``by_design``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from iomemfuzz.fuzz.finding import Violation, slug
from iomemfuzz.fuzz.ledger import ledger
from iomemfuzz.model.devmem import DEV_MEM, LOW_MIB_PFNS
from iomemfuzz.model.event import UNMAP
from iomemfuzz.model.ioport import (
    IORESOURCE_BUSY,
    IORESOURCE_EXCLUSIVE,
    IORESOURCE_SYSTEM_RAM,
)
from iomemfuzz.model.mm import (
    ACCESS_KEY,
    CAUSE_REVOKE,
    PAGE_SHIFT,
    PAGE_SIZE,
    SPACE_MEM,
    TARGET_BAR,
    TARGET_NONE,
    TARGET_RAM,
    Vma,
)
from iomemfuzz.model.profile import GRANULARITY_BYTE
from iomemfuzz.model.resource_check import covering
from iomemfuzz.model.resource_region import REVOKE_UNMAPPED

NAME = "mapping-survival"
FAMILY = "mapping survival"
EVENTS_ONLY = True
STATELESS = True

REACHES_CLAIMED = "reaches-claimed"
# The handler that makes each kind of mapping, by the start of the file's path.
_MMAP_HANDLER = (("/proc/bus/pci/", "proc_bus_pci_mmap"), (DEV_MEM, "mmap_mem"))
# Why revoke_iomem skipped the unmap (Revocation.outcome) as a mechanism.
_SKIPPED = {"io_strict_devmem=n": "io-strict-off"}


def check_state(kernel) -> Iterator[Violation]:
    """Mapping survival is judged on what each access and unmap did (events)."""
    return iter(())


def check_step(kernel, step) -> Iterable[Violation]:
    # Almost every step logs nothing: answer () without creating a generator (this runs
    # after every step).
    return _step_events(kernel, step) if step.events else ()


def _step_events(kernel, step) -> Iterator[Violation]:
    for event in step.events:
        if event.get(ACCESS_KEY) and event.get("space") == SPACE_MEM:
            if kernel.profile.promise_exclusive_after_claim:
                yield from _exclusive(kernel, event)
            yield from _devmem_ram(kernel, event)
            yield from _isolation(kernel, event)
        elif event.kind == UNMAP and event.get("cause") == CAUSE_REVOKE:
            yield from _reach(kernel, event)


def _handler(path: str) -> str:
    """The mmap handler of the file at ``path``."""
    for prefix, handler in _MMAP_HANDLER:
        if path.startswith(prefix):
            return handler
    if path.endswith(("legacy_mem", "legacy_io")):
        return "pci_mmap_legacy_page_range"
    return "pci_mmap_resource"


# --- (a) exclusivity ------------------------------------------------------------------

def _live_claims(kernel, first: int, last: int):
    """Ledger claims on iomem that are live, busy and overlap [first, last]."""
    iomem = kernel.roots[0]
    for claim in ledger(kernel).claims.values():
        node = claim.node
        if claim.lost_by is not None or not node.flags & IORESOURCE_BUSY:
            continue
        if node.end < first or node.start > last or not kernel.in_tree(node):
            continue
        while node.parent is not None:
            node = node.parent
        if node is iomem:
            yield claim


def _find_vma(kernel, vma_id: object) -> Vma | None:
    for vma in (*kernel.mm.vmas, *kernel.mm.pending):
        if vma.id == vma_id:
            return vma
    return None


def _exclusive(kernel, event) -> Iterator[Violation]:
    phys = int(event.get("phys"))
    last = phys + max(1, int(event.get("length"))) - 1
    claims = list(_live_claims(kernel, phys, last))
    if not claims and event.get("target_kind") == TARGET_BAR:
        yield from _unclaimed_driver_bar(kernel, event)
    for claim in claims:
        node = claim.node
        what = (f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of {event.get('path')} "
                f"reached {max(phys, node.start):#x}, claimed by {claim.holder} "
                f"{node!r}")
        access = event.get(ACCESS_KEY)
        if access in ("read", "write"):
            why, catalog = _policy(kernel, node, phys)
            function = f"{access}_mem"
            text = f"read()/write() check every page, and devmem_is_allowed said yes ({why})"
        else:
            vma = _find_vma(kernel, event.get("vma"))
            if vma is None:
                continue
            function, why, catalog, text = _classify(kernel, claim, vma, phys)
        yield Violation(NAME, REACHES_CLAIMED, f"{what}: {text}", catalog, function, why)


def _unclaimed_driver_bar(kernel, event) -> Iterator[Violation]:
    """A bound driver that holds no claim of its BAR shares it with userspace: B13 when
    it never claimed, or someone removed its claim."""
    dev = kernel.pci_device(str(event.get("target_owner")))
    driver = getattr(dev, "driver", None)
    if driver is None:
        return
    lost = any(c.holder == driver.name and c.lost_by is not None
               for c in ledger(kernel).claims.values())
    why = "claim-lost" if lost else "never-claimed"
    yield Violation(
        NAME, "driver-bar-unclaimed",
        f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of {event.get('path')} reached "
        f"{event.get('target')} while driver {driver.name} is bound: the driver holds no "
        f"claim of its BAR ({why}), so nothing is exclusive", "" if lost else "B13",
        "pci_device_probe", why)


def _policy(kernel, node, phys: int) -> tuple[str, str]:
    """(why, catalog): why devmem_is_allowed still says yes to a page of a busy node."""
    profile = kernel.profile
    if not profile.strict_iomem_checks:
        if node.flags & IORESOURCE_EXCLUSIVE and not profile.iomem_is_exclusive_v516:
            return "exclusive-ignored", "B19"
        return "relaxed", "B5"
    if phys >> PAGE_SHIFT < LOW_MIB_PFNS:
        return "low-mib", "B5"
    if not profile.io_strict_devmem:
        return "io-strict-off", "B5"
    return "allowed", "B5"


def _classify(kernel, claim, vma: Vma, phys: int) -> tuple[str, str, str, str]:
    """(function, mechanism, catalog, explanation) for a mapping that reached a claimed
    byte."""
    profile = kernel.profile
    devmem = kernel.devmem
    node = claim.node
    if vma.populated_at > claim.at:
        handler = _handler(vma.path)
        if handler == "proc_bus_pci_mmap" and not profile.procfs_mmap_checks_exclusive:
            return (handler, "no-exclusive-check", "B10",
                    "procfs mmap did not check iomem_is_exclusive before v5.12")
        if vma.made_for is not None:
            return (handler, "checks-bar-start-only", "",
                    "the resource file's mmap tests only the first page of the BAR")
        why, catalog = _policy(kernel, node, phys)
        return (handler, why, catalog,
                f"mmap_mem's page checks still allow this page ({why})")
    if not profile.revoke_devmem:
        return ("__request_region", "no-revoke", "B5",
                "this kernel never revokes user mappings")
    if vma.mapping is not devmem.iomem_inode:
        if vma.path.endswith("legacy_mem"):
            function, catalog = "pci_create_legacy_files", "B11a"
        else:
            handler = _handler(vma.path)
            function = "sysfs_kf_bin_open" if handler == "pci_mmap_resource" else handler
            catalog = "B10" if vma.made_for is not None or handler != "mmap_mem" else "B5"
        return (function, "outside-iomem-space", catalog,
                f"the mapping hangs off {vma.mapping.name if vma.mapping else 'nothing'}, "
                "which revoke_iomem never walks")
    if phys < claim.start or phys > claim.end:
        return ("adjust_resource", "grown-without-revoke", "B14",
                f"the claim was [{claim.start:#x}-{claim.end:#x}] when it was made and "
                "has grown since: growing a busy node revokes nothing")
    record = devmem.revocation_of(node)
    if record is None:
        return (claim.how or "unknown", "no-revoke-path", "B14",
                f"the busy node was made by {claim.how or 'kernel code'}, which revokes "
                "nothing (only __request_region on the iomem root does)")
    if record.outcome != REVOKE_UNMAPPED:
        why, catalog = _skip_why(kernel, node, record.outcome)
        return ("revoke_iomem", why, catalog,
                f"revoke_iomem skipped the unmap ({record.outcome}: {why})")
    if vma.linked_at > record.at:
        return ("mmap_region", "populated-before-link", "BD6",
                "the mapping was populated before revoke_iomem but linked into i_mmap "
                "after it walked i_mmap")
    return ("unmap_mapping_range", "page-rounding", "BD7",
            "unmap_mapping_range rounded the start down and the length up on its own, "
            "missing the claim's last page")


def _skip_why(kernel, node, outcome: str) -> tuple[str, str]:
    """(mechanism, catalog) of a revoke_iomem that returned without unmapping."""
    profile = kernel.profile
    if outcome == "no-inode":
        return "no-inode", "B25" if profile.iomem_init_inode_fails else "B5"
    if outcome == "ends-allowed":
        if not profile.strict_iomem_checks:
            return "relaxed", "B5"  # iomem=relaxed (or STRICT_DEVMEM=n): all allowed
        # Only the end pages were asked. With a page between them that is exclusive now
        # (refused to new sysfs and procfs mmaps, which have no low-MiB exemption), that
        # is B6; otherwise the claim is all end pages, low-MiB ones (B5).
        if _exclusive_between(kernel, node.start >> PAGE_SHIFT, node.end >> PAGE_SHIFT):
            return "checks-end-pages-only", "B6"
        return "low-mib", "B5"
    return _SKIPPED.get(outcome, slug(outcome)), "B5"


def _exclusive_between(kernel, first: int, last: int) -> bool:
    """Is some page strictly between pfns ``first`` and ``last`` exclusive now
    (iomem_is_exclusive)? Only the 512 pages next to each end are asked: enough to
    tell, and a claim can be a whole window."""
    pages = range(first + 1, last)
    if len(pages) > 1024:
        pages = [*range(first + 1, first + 513), *range(last - 512, last)]
    exclusive = kernel.resources.iomem_is_exclusive
    return any(exclusive(pfn << PAGE_SHIFT) for pfn in pages)


# --- (a') STRICT_DEVMEM keeps /dev/mem away from RAM -----------------------------------

def _devmem_ram(kernel, event) -> Iterator[Violation]:
    """Under STRICT_DEVMEM /dev/mem never reaches memory the kernel uses as System RAM
    above 1 MiB, and below it read() shows zeros — so mmap must not show the real bytes
    either. RAM means both: the machine has memory there (what the access reached) and
    the kernel's tree says System RAM over it."""
    if event.get("path") != DEV_MEM or not kernel.profile.strict_devmem:
        return
    if event.get("target_kind") != TARGET_RAM or event.get(ACCESS_KEY) == "write":
        return
    phys = int(event.get("phys"))
    ram = _system_ram_at(kernel, phys)
    if ram is None:
        return
    pfn = phys >> PAGE_SHIFT
    what = (f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of /dev/mem reached "
            f"{event.get('target')} at {phys:#x}")
    if pfn >= LOW_MIB_PFNS:
        nested = ram.parent is not None and ram.parent.parent is not None
        why = "nested-ram-invisible" if nested else "ram-not-seen"
        yield Violation(NAME, "devmem-reaches-ram",
                        f"{what}: devmem_is_allowed did not see the page as RAM "
                        f"({'System RAM under ' + repr(ram.parent) if nested else why})",
                        "B18", "devmem_is_allowed", why)
    elif event.get(ACCESS_KEY) in ("mmap", "ptrace"):
        yield Violation(NAME, "devmem-low-ram-mapped",
                        f"{what}: read() of this page shows zeros, the mapping shows the "
                        "real bytes", "B22", "mmap_mem", "read-zero-fills")


def _system_ram_at(kernel, phys: int):
    """The deepest busy System RAM node covering ``phys``, or None."""
    ram = [n for n in covering(kernel.roots[0], phys)
           if n.flags & IORESOURCE_SYSTEM_RAM == IORESOURCE_SYSTEM_RAM
           and n.flags & IORESOURCE_BUSY]
    return ram[-1] if ram else None


# --- (b) reach of revocation -----------------------------------------------------------

def _reach(kernel, event) -> Iterator[Violation]:
    start, end = event.get("claim_start"), event.get("claim_end")
    killed = event.get("killed") or ()
    if start is None or not killed:
        return
    first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    for lo, hi in killed:
        if lo < first or hi > last:
            yield Violation(
                NAME, "revoke-beyond-claim",
                f"claim [{start:#x}-{end:#x}] zapped live pfns {lo:#x}-{hi:#x} of "
                f"pid{event.get('pid')} {event.get('path')}, outside the pages it touches",
                "", "unmap_mapping_range", "range-rounding")
        if kernel.profile.revoke_granularity == GRANULARITY_BYTE:
            edge = [p for p in {lo, hi} if (p << PAGE_SHIFT) < start
                    or (p << PAGE_SHIFT) + PAGE_SIZE - 1 > end]
            if edge:
                yield Violation(
                    NAME, "collateral-revocation",
                    f"claim [{start:#x}-{end:#x}] zapped pfn {edge[0]:#x} of "
                    f"pid{event.get('pid')} {event.get('path')}, whose page holds "
                    "unclaimed bytes", "B7", "revoke_iomem", "page-granular")


# --- (c) device isolation ----------------------------------------------------------------

def _isolation(kernel, event) -> Iterator[Violation]:
    owner = event.get("made_for_owner")
    if owner is None:
        return
    bar = event.get("made_for_bar")
    kind = event.get("target_kind")
    if kind == TARGET_BAR:
        if event.get("target_owner") != owner:
            kind = "reaches-other-device"
        elif event.get("target_bar") != bar:
            kind = "reaches-other-bar"
        else:
            return
    elif kind == TARGET_NONE:
        # Reaching nothing (a device that stopped decoding) exposes nothing.
        return
    else:
        kind = "reaches-memory"
    where = (f"pid{event.get('pid')} {event.get(ACCESS_KEY)} of {event.get('path')} "
             f"(made for {owner} BAR{bar}) reached {event.get('phys'):#x}: "
             f"{event.get('target')}")
    why = _isolation_why(kernel, event, str(owner), bar)
    yield Violation(NAME, kind, f"{where} ({why})", _ISOLATION_CATALOG.get(why, ""),
                    _handler(str(event.get("path"))), why)


# The catalog entries of the isolation mechanisms that have one.
_ISOLATION_CATALOG = {"removed-still-decodes": "BD4", "sub-page-bar": "BD5"}


def _isolation_why(kernel, event, owner: str, bar: object) -> str:
    """Why a device mapping reached beyond its BAR: what answered is a function the
    kernel removed but which still decodes the range the kernel has since given to
    another device (issue 17, point 1); the BAR is smaller than the page it shares; its
    device is gone; or the BAR has moved since the mapping was made."""
    target = event.get("target_owner")
    if (event.get("target_kind") == TARGET_BAR and target != owner
            and kernel.pci_device(str(target)) is None):
        return "removed-still-decodes"
    dev = kernel.pci_device(owner)
    if dev is None:
        return "survived-removal"
    res = dev.resource[bar] if isinstance(bar, int) else None
    if res is None:
        return "unknown"
    phys = int(event.get("phys"))
    pfn = phys >> PAGE_SHIFT
    if res.start >> PAGE_SHIFT <= pfn <= res.end >> PAGE_SHIFT:
        # The page is the BAR's, the byte is not: the BAR does not fill its page.
        return "sub-page-bar"
    return "bar-moved"


# What each kind and mechanism means, for the triage table (docs/FINDINGS.md).
KINDS = {
    REACHES_CLAIMED: "a user access reaches registers a driver claimed",
    "driver-bar-unclaimed": "a user mapping shares a BAR with its bound driver",
    "devmem-reaches-ram": "/dev/mem reaches System RAM",
    "devmem-low-ram-mapped": "a /dev/mem mapping shows low RAM that read() hides",
    "revoke-beyond-claim": "a revocation zaps pages beyond the claim",
    "collateral-revocation": "a revocation zaps bytes nobody claimed",
    "reaches-other-device": "a BAR mapping reaches another device",
    "reaches-other-bar": "a BAR mapping reaches another BAR",
    "reaches-memory": "a BAR mapping reaches memory",
}
WHY = {
    "low-mib": "pages below 1 MiB are always allowed",
    "relaxed": "iomem=relaxed: busy is not exclusive",
    "io-strict-off": "CONFIG_IO_STRICT_DEVMEM=n: revocation is a stub",
    "exclusive-ignored": "before v5.16 iomem=relaxed ignored EXCLUSIVE",
    "allowed": "devmem_is_allowed still allows the page",
    "no-revoke": "this kernel never revokes",
    "outside-iomem-space": "the mapping hangs off an address space revoke_iomem never walks",
    "no-revoke-path": "the busy node came from a call that revokes nothing",
    "grown-without-revoke": "the claim grew after it was made; growing revokes nothing",
    "checks-end-pages-only": "only the end pages were checked, the middle is exclusive",
    "no-inode": "the iomem inode is missing",
    "populated-before-link": "the mapping was filled before, and linked after, the revocation",
    "page-rounding": "the unmap range was rounded and missed the last page",
    "checks-bar-start-only": "the resource file's mmap tests only the BAR's first page",
    "no-exclusive-check": "procfs mmap did not check exclusivity",
    "never-claimed": "the driver never claimed its BAR",
    "claim-lost": "someone removed the driver's claim",
    "nested-ram-invisible": "System RAM nested under a non-RAM node is not seen",
    "read-zero-fills": "read() zero-fills the page, mmap shows the real bytes",
    "range-rounding": "the unmap range was rounded outward",
    "page-granular": "unmapping works on whole pages",
    "sub-page-bar": "the BAR is smaller than the page the mapping exposes",
    "removed-still-decodes": "a removed function still decodes the range given to another",
    "survived-removal": "the device was removed and its mapping survived",
    "bar-moved": "the BAR moved after the mapping was made",
}


def explain(kind: str, function: str, mechanism: str) -> str:
    text = f"{KINDS.get(kind, kind)}, through {function}"
    return f"{text}: {WHY[mechanism]}" if mechanism in WHY else text
