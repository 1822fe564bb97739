"""Processes, open files, VMAs and the address spaces revocation acts on (mm/, fs/kernfs).

What a user mapping of /dev/mem, a PCI sysfs ``resourceN`` file or a procfs bus entry is,
reduced to what decides whether a later access reaches the device:

* an :class:`AddressSpace` is a ``struct address_space``: the VMAs linked into its
  ``i_mmap``. There is one shared *iomem* space (since v5.12 every iomem mmap hangs off
  it, indexed by physical page frame number, spec §4.6) and one space per kernfs node or
  proc entry (where pre-5.12 sysfs/procfs mmaps hang, spec §4.8);
* a :class:`Vma` maps ``npages`` pages starting at ``pgoff`` (always the physical pfn: the
  ``->mmap`` methods adjust it before the VMA is linked) with one PTE per page that is
  either live, gone (zapped, or never populated) or a private COW copy;
* :meth:`Mm.unmap_mapping_range` zaps PTEs with the kernel's rounding (spec §4.5), and
  :meth:`Mm.touch` turns an access through a VMA into what the physical address reaches
  (a BAR's registers, RAM, nothing) or a SIGBUS.

The mmap path is a generator (:meth:`Mm.mmap_region`) that yields between "PTEs
populated" and "VMA linked into i_mmap", so the scheduler can run a revocation in that
window (spec §4.7).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

from iomemfuzz.model import errno
from iomemfuzz.model.event import INFO, NULL_DEREF, SIGBUS, UNMAP, WARN, Log
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.sched import Point, complete

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
U64_MAX = (1 << 64) - 1
# x86-64 with 4-level paging: the largest user mapping do_mmap() accepts.
TASK_SIZE = (1 << 47) - PAGE_SIZE

CAP_SYS_RAWIO = "CAP_SYS_RAWIO"
CAP_SYS_ADMIN = "CAP_SYS_ADMIN"
ROOT_CAPS = frozenset({CAP_SYS_RAWIO, CAP_SYS_ADMIN})

# Per-page PTE states of a Vma.
PTE_NONE = "none"  # no PTE: the next access faults, and nothing refaults (no .fault)
PTE_PFN = "pfn"  # maps physical page pgoff + index
PTE_COW = "cow"  # an anonymous private copy made by a write to a MAP_PRIVATE mapping

# What a physical access reaches (Target.kind).
TARGET_BAR = "bar"  # a PCI device's BAR registers
TARGET_RAM = "ram"  # System RAM
TARGET_FIRMWARE = "firmware"  # memory firmware described but no device decodes (ROM, ACPI)
TARGET_NONE = "unbacked"  # nothing decodes the address (master abort: reads all ones)
TARGET_ANON = "anon"  # the process's own COW copy, not physical memory at the address

# Outcomes of a user access (Access.status).
ACCESS_OK = "ok"
ACCESS_SIGBUS = "SIGBUS"
ACCESS_SIGSEGV = "SIGSEGV"

# UNMAP event causes.
CAUSE_REVOKE = "revoke"  # revoke_iomem() after a claim
CAUSE_DRAIN = "drain"  # kernfs_drain_open_files() on file removal

# Event data key marking "a user access reached physical memory"; oracles filter on it.
ACCESS_KEY = "access"
SPACE_MEM = "mem"  # the access went to a physical memory address
SPACE_IO = "io"  # the access went to an I/O port


@dataclass(frozen=True, slots=True)
class Target:
    """What one physical address reaches. ``owner`` names the device ("0000:00:03.0") or
    the memory ("System RAM"); ``bar``/``offset`` locate a BAR register."""

    kind: str
    owner: str = ""
    bar: int | None = None
    offset: int = 0

    def __str__(self) -> str:
        if self.kind == TARGET_BAR:
            return f"{self.owner} BAR{self.bar}+{self.offset:#x}"
        if self.owner:
            return f"{self.kind} ({self.owner})"
        return self.kind


UNBACKED = Target(TARGET_NONE)

# A resolver answers "what decodes this physical address?" or None (not mine).
Resolver = Callable[[int], Target | None]


class AddressSpace:
    """Models `struct address_space`, include/linux/fs.h, v6.1: the VMAs in ``i_mmap``.

    ``host_size`` is ``i_size`` of the host inode, which generic llseek consults (the
    anonymous iomem inode has size 0, hence B11b)."""

    __slots__ = ("host_size", "i_mmap", "name")

    def __init__(self, name: str, host_size: int = 0) -> None:
        self.name = name
        self.host_size = host_size
        self.i_mmap: list[Vma] = []

    def __repr__(self) -> str:
        return f"AddressSpace({self.name!r}, {len(self.i_mmap)} vmas)"


@dataclass(eq=False, slots=True)
class Process:
    """A user process: its credentials, mappings and open files."""

    pid: int
    caps: frozenset[str] = ROOT_CAPS
    alive: bool = True
    vmas: list[Vma] = field(default_factory=list)
    files: list[File] = field(default_factory=list)

    def capable(self, cap: str) -> bool:
        """Models `capable()`, kernel/capability.c, v6.1 (no user namespaces here)."""
        return cap in self.caps


@dataclass(eq=False, slots=True)
class FileOps:
    """The ``file_operations`` a file was opened with; any entry may be missing."""

    mmap: Callable[[File, Vma], int] | None = None
    read: Callable[[File, int, int], int] | None = None
    write: Callable[[File, int, int], int] | None = None
    llseek: Callable[[File, int, int], int] | None = None
    release: Callable[[File], None] | None = None


@dataclass(eq=False, slots=True)
class File:
    """An open file: ``path`` for narration, ``f_mapping`` (the address space its mmaps
    are linked into), ``inode_size`` (``file_inode(f)->i_size``) and ``private`` (the
    opener's per-file state: a sysfs attribute, procfs mmap state)."""

    process: Process
    path: str
    f_op: FileOps
    f_mapping: AddressSpace | None
    inode_size: int = 0
    readable: bool = True
    writable: bool = True
    pos: int = 0
    closed: bool = False
    private: object = None


class PageRanges:
    """A set of page indices kept as sorted, merged, inclusive intervals (VMAs can span
    2^35 pages, so per-page lists are out)."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []

    def add(self, first: int, last: int) -> None:
        """Add the inclusive index range [first, last]."""
        spans = [*self._spans, (first, last)]
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._spans = merged

    def __contains__(self, index: int) -> bool:
        return any(lo <= index <= hi for lo, hi in self._spans)

    def spans(self) -> tuple[tuple[int, int], ...]:
        """The merged inclusive ranges, ascending."""
        return tuple(self._spans)

    def complement(self, first: int, last: int) -> Iterator[tuple[int, int]]:
        """Sub-ranges of [first, last] not in the set."""
        cursor = first
        for lo, hi in self._spans:
            if hi < cursor:
                continue
            if lo > last:
                break
            if lo > cursor:
                yield cursor, min(lo - 1, last)
            cursor = max(cursor, hi + 1)
            if cursor > last:
                return
        if cursor <= last:
            yield cursor, last


@dataclass(eq=False, slots=True)
class Vma:
    """Models `struct vm_area_struct` of a VM_IO|VM_PFNMAP mapping, v6.1.

    ``pgoff`` is the physical pfn of page 0 once ``->mmap`` returned (spec §4.6).
    ``made_for`` names what the mapping was made for (a device BAR for sysfs/procfs,
    None for /dev/mem); ``access_gate`` is the kernfs wrapper's liveness test (the
    ``kernfs_vm_ops`` that wrap sysfs mmaps refuse ptrace access once the file is
    removed)."""

    id: int
    process: Process
    file: File
    pgoff: int
    npages: int
    shared: bool
    writable: bool
    path: str
    mapping: AddressSpace | None = None
    made_for: Target | None = None
    prot: str = "uc"
    populated: bool = False
    linked: bool = False
    # Mm.tick() stamps of when the PTEs were filled and when the VMA was linked: oracles
    # order them against claims and revocations.
    populated_at: int = -1
    linked_at: int = -1
    unmapped: bool = False
    access_gate: Callable[[], bool] | None = None
    zapped: PageRanges = field(default_factory=PageRanges)
    cow: set[int] = field(default_factory=set)

    @property
    def size(self) -> int:
        """vm_end - vm_start."""
        return self.npages << PAGE_SHIFT

    def pte(self, index: int) -> str:
        """The PTE state of page ``index`` (0-based inside the VMA)."""
        if index in self.cow:
            return PTE_COW
        if not self.populated or index in self.zapped:
            return PTE_NONE
        return PTE_PFN

    def live_spans(self) -> Iterator[tuple[int, int]]:
        """Inclusive index ranges whose PTEs still map the physical pages (not COW)."""
        if not self.populated or self.unmapped:
            return
        for lo, hi in self.zapped.complement(0, self.npages - 1):
            start = lo
            for index in sorted(i for i in self.cow if lo <= i <= hi):
                if index > start:
                    yield start, index - 1
                start = index + 1
            if start <= hi:
                yield start, hi

    def describe(self) -> str:
        """Narration: "vma3 pid1 /dev/mem [0xfe000000-0xfe000fff] shared"."""
        first = self.pgoff << PAGE_SHIFT
        last = ((self.pgoff + self.npages) << PAGE_SHIFT) - 1
        kind = "shared" if self.shared else "private"
        return (f"vma{self.id} pid{self.process.pid} {self.path} "
                f"[{first:#x}-{last:#x}] {kind}")


@dataclass(frozen=True, slots=True)
class Access:
    """The result of one user access through a mapping."""

    status: str
    phys: int | None = None
    target: Target | None = None

    @property
    def ok(self) -> bool:
        """The access reached memory (no signal)."""
        return self.status == ACCESS_OK

    def __str__(self) -> str:
        if self.status != ACCESS_OK:
            return self.status
        return str(self.target)


# Where the mmap path parks between populate and link (spec §4.7).
MMAP_WINDOW = "mmap_region: PTEs populated, VMA not yet linked into i_mmap"


class Mm:
    """Every process, open file and VMA of the modelled machine, and the physical
    address decoders a user access is resolved against."""

    def __init__(self, profile: KernelProfile, log: Log) -> None:
        self.profile = profile
        self.log = log
        self.processes: dict[int, Process] = {}
        self._next_pid = 1
        self._next_vma = 1
        self.vmas: list[Vma] = []  # every linked VMA not yet unmapped, in link order
        self.pending: list[Vma] = []  # populated VMAs parked before vma_link()
        self.resolvers: list[Resolver] = []
        # Per-kernfs-node (and per proc entry) inode address spaces, keyed by the node.
        self._inode_spaces: dict[object, AddressSpace] = {}
        self._clock = 0
        # PID 1, full root: the process a Program line acts as unless it names another.
        self.init = self.spawn()

    def tick(self) -> int:
        """A strictly increasing stamp: the order of populates, links, claims and
        revocations (log positions tie when nothing was logged in between)."""
        self._clock += 1
        return self._clock

    def init_process(self) -> Process:
        """The init process (pid 1), which Program lines act as by default."""
        return self.init

    # --- processes and files -------------------------------------------------------

    def spawn(self, caps: frozenset[str] = ROOT_CAPS) -> Process:
        """Models `fork()` → `copy_process()`, kernel/fork.c, v6.1, plus credential setup:
        a new process with ``caps``."""
        proc = Process(self._next_pid, frozenset(caps))
        self._next_pid += 1
        self.processes[proc.pid] = proc
        return proc

    def install_file(self, process: Process, path: str, f_op: FileOps,
                     f_mapping: AddressSpace | None, *, inode_size: int = 0,
                     private: object = None, readable: bool = True,
                     writable: bool = True) -> File:
        """Models `fd_install()` after a successful open: the file joins the process."""
        file = File(process, path, f_op, f_mapping, inode_size, readable, writable,
                    private=private)
        process.files.append(file)
        return file

    def close(self, file: File) -> int:
        """Models `close(2)` → `fput()`, fs/file_table.c, v6.1: the file is released once
        no VMA holds it."""
        if file.closed:
            return -errno.EBADF
        file.closed = True
        if file in file.process.files:
            file.process.files.remove(file)
        if not any(v.file is file for v in self.vmas) and file.f_op.release:
            file.f_op.release(file)
        return 0

    def exit(self, process: Process) -> int:
        """Models `do_exit()`, kernel/exit.c, v6.1: `exit_mm()` unmaps every VMA, then
        `exit_files()` closes every file."""
        if not process.alive:
            return -errno.EINVAL
        for vma in list(process.vmas):
            self.munmap(vma)
        for file in list(process.files):
            self.close(file)
        process.alive = False
        self.log.emit(INFO, f"pid{process.pid} exited", pid=process.pid)
        return 0

    # --- address spaces ----------------------------------------------------------------

    def inode_mapping(self, node: object, name: str, size: int = 0) -> AddressSpace:
        """Models `inode->i_mapping` of a kernfs node's (or proc entry's) inode, v6.1.

        One space per node object: a removed and re-created file is a new node with a
        new inode, so mappings of the old one are not reached through the new one."""
        space = self._inode_spaces.get(node)
        if space is None:
            space = AddressSpace(name, size)
            self._inode_spaces[node] = space
        return space

    def kernfs_drain_open_files(self, node: object) -> None:
        """Models `kernfs_drain_open_files()`, fs/kernfs/file.c, v6.1: on removal of a
        node with mmapped open files, zap the whole *kernfs inode's* mapping.

        Since v5.12 the PCI resource files' VMAs hang off the iomem space instead (their
        f_mapping was swapped at open), so this finds nothing to zap (spec §4.8)."""
        space = self._inode_spaces.get(node)
        if space is not None:
            self.unmap_mapping_range(space, 0, 0, True, cause=CAUSE_DRAIN)

    # --- mmap ------------------------------------------------------------------------

    def mmap_region(self, file: File, pgoff: int, npages: int, *, shared: bool = True,
                    writable: bool = True
                    ) -> Generator[object, None, Vma | int]:
        """Models `do_mmap()` → `mmap_region()`, mm/mmap.c, v6.1, as a kernel path.

        ``->mmap`` (which fills every PTE with remap_pfn_range) runs *before* the VMA is
        linked into ``f_mapping->i_mmap``; the generator yields in between, which is the
        window where a concurrent revoke_iomem() cannot see the new VMA (spec §4.7).
        Returns the Vma, or -errno."""
        proc = file.process
        if file.closed or not proc.alive:
            return -errno.EBADF
        if npages <= 0:
            return -errno.EINVAL
        if npages > TASK_SIZE >> PAGE_SHIFT:
            return -errno.ENOMEM
        if file.f_op.mmap is None:
            return -errno.ENODEV
        if not file.readable or (shared and writable and not file.writable):
            return -errno.EACCES
        vma = Vma(self._next_vma, proc, file, pgoff, npages, shared, writable, file.path)
        self._next_vma += 1
        ret = file.f_op.mmap(file, vma)
        if ret < 0:
            return ret
        if vma.populated:
            self.pending.append(vma)
            try:
                yield Point(MMAP_WINDOW, vma.describe())
            finally:
                self.pending.remove(vma)
        # vma_link(): the VMA joins the mm and f_mapping's i_mmap (under the i_mmap lock)
        if file.f_mapping is None:
            self.log.emit(NULL_DEREF, "mmap: vma_link with a NULL f_mapping",
                          path=file.path, function="mmap_region")
            return -errno.EFAULT
        if not proc.alive:
            # The process was killed while the task was parked: exit_mmap() tears the
            # new VMA down as soon as it is linked, so it never becomes reachable.
            return -errno.EBADF
        vma.mapping = file.f_mapping
        vma.linked = True
        vma.linked_at = self.tick()
        file.f_mapping.i_mmap.append(vma)
        proc.vmas.append(vma)
        self.vmas.append(vma)
        return vma

    def mmap(self, file: File, pgoff: int, npages: int, *, shared: bool = True,
             writable: bool = True) -> Vma | int:
        """Models `mmap(2)` → `do_mmap()`, mm/mmap.c, v6.1, run without interleaving (see
        :meth:`mmap_region`)."""
        result = complete(self.mmap_region(file, pgoff, npages, shared=shared,
                                           writable=writable))
        assert isinstance(result, Vma | int)
        return result

    def remap_pfn_range(self, vma: Vma, pfn: int) -> int:
        """Models `remap_pfn_range()`, mm/memory.c, v6.1: set ``vm_pgoff`` to ``pfn`` (it
        must for COW mappings; the three callers here pass ``vm_pgoff`` anyway) and
        populate every PTE of the VMA now."""
        vma.pgoff = pfn
        vma.populated = True
        vma.populated_at = self.tick()
        return 0

    def munmap(self, vma: Vma) -> int:
        """Models `munmap(2)` → `do_mas_munmap()`, mm/mmap.c, v6.1, of a whole VMA: unlink
        it from i_mmap and the mm."""
        if vma.unmapped:
            # Its range is page-aligned and non-empty, so the argument checks pass; no VMA
            # overlaps it any more, and unmapping nothing succeeds.
            return 0
        vma.unmapped = True
        if vma.linked and vma.mapping is not None and vma in vma.mapping.i_mmap:
            vma.mapping.i_mmap.remove(vma)
        vma.linked = False
        if vma in vma.process.vmas:
            vma.process.vmas.remove(vma)
        if vma in self.vmas:
            self.vmas.remove(vma)
        if (vma.file.closed and vma.file.f_op.release
                and not any(v.file is vma.file for v in self.vmas)):
            vma.file.f_op.release(vma.file)
        return 0

    # --- revocation --------------------------------------------------------------------

    def unmap_mapping_range(self, space: AddressSpace, holebegin: int, holelen: int,
                            even_cows: bool, *, cause: str = "", **why: object
                            ) -> list[tuple[Vma, int, int]]:
        """Models `unmap_mapping_range()`, mm/memory.c, v6.1.

        The first page index is ``holebegin`` rounded *down*; the page count is
        ``holelen`` rounded up on its own (not recomputed from the end address), so an
        unaligned range can leave its last page mapped; ``holelen`` 0 means "to the end
        of the file" (spec §4.5). Returns (vma, first pfn, last pfn) per VMA touched.
        ``cause`` and ``why`` only annotate the UNMAP events (who asked, for which claim)."""
        hba = (holebegin & U64_MAX) >> PAGE_SHIFT
        hlen = ((holelen + PAGE_SIZE - 1) & U64_MAX) >> PAGE_SHIFT
        return self.unmap_mapping_pages(space, hba, hlen, even_cows, cause=cause, **why)

    def unmap_mapping_pages(self, space: AddressSpace, start: int, nr: int,
                            even_cows: bool, *, cause: str = "", **why: object
                            ) -> list[tuple[Vma, int, int]]:
        """Models `unmap_mapping_pages()`, mm/memory.c, v6.1: zap the PTEs of page
        indices [start, start + nr - 1] in every VMA linked into ``space``; nr 0 (or a
        wrapping end) runs to the last index."""
        first = start
        last = (start + nr - 1) & U64_MAX
        if last < first:
            last = U64_MAX
        touched: list[tuple[Vma, int, int]] = []
        for vma in list(space.i_mmap):
            vba = vma.pgoff
            vea = vba + vma.npages - 1
            if vea < first or vba > last:
                continue
            zba = max(first, vba)
            zea = min(last, vea)
            lo, hi = zba - vba, zea - vba
            # The pages that really lose a live PTE (already dead ones harm nobody).
            killed = tuple((vba + max(low, lo), vba + min(h, hi))
                           for low, h in vma.live_spans() if h >= lo and low <= hi)
            live = sum(b - a + 1 for a, b in killed)
            vma.zapped.add(lo, hi)
            if even_cows:
                vma.cow -= {i for i in vma.cow if lo <= i <= hi}
            touched.append((vma, zba, zea))
            self.log.emit(
                UNMAP,
                f"unmap_mapping_range({space.name}): {vma.describe()} loses pfns "
                f"{zba:#x}-{zea:#x}",
                space=space.name, vma=vma.id, pid=vma.process.pid, path=vma.path,
                first_pfn=zba, last_pfn=zea, live_pages=live, killed=killed, cause=cause,
                **why,
            )
        return touched

    # --- access ------------------------------------------------------------------------

    def add_resolver(self, resolver: Resolver, *, first: bool = False) -> None:
        """Register a physical address decoder (the PCI model's BARs, the RAM map).
        Devices decode ahead of the memory map, so the PCI model registers ``first``."""
        if first:
            self.resolvers.insert(0, resolver)
        else:
            self.resolvers.append(resolver)

    def physical(self, addr: int) -> Target:
        """What the physical address ``addr`` reaches: asks each decoder in order."""
        for resolver in self.resolvers:
            target = resolver(addr)
            if target is not None:
                return target
        return UNBACKED

    def record_access(self, via: str, process: Process, phys: int, length: int,
                      write: bool, target: Target, vma: Vma | None = None, *,
                      space: str = SPACE_MEM, path: str = "") -> None:
        """Log that a user access reached ``length`` bytes at ``phys`` (a memory address,
        or a port for ``space`` "io"). ``via`` is the kind of access ("mmap", "ptrace",
        "read", "write"), ``path`` the file; oracles read these events."""
        verb = "write" if write else "read"
        where = f"port {phys:#x}" if space == SPACE_IO else f"{phys:#x}"
        path = vma.path if vma is not None else path
        made_for = vma.made_for if vma is not None else None
        how = f"{via}()" if via in ("read", "write") else f"{verb} through {via}"
        self.log.emit(
            INFO, f"pid{process.pid} {how} of {path} {where}+{length:#x} reaches {target}",
            **{ACCESS_KEY: via}, space=space, pid=process.pid, phys=phys, length=length,
            write=write, path=path, vma=None if vma is None else vma.id,
            target=str(target), target_kind=target.kind, target_owner=target.owner,
            target_bar=target.bar,
            made_for=None if made_for is None else str(made_for),
            made_for_owner=None if made_for is None else made_for.owner,
            made_for_bar=None if made_for is None else made_for.bar,
        )

    def touch(self, vma: Vma, offset: int, *, write: bool = False) -> Access:
        """Models a user load/store at ``offset`` into ``vma`` (the MMU plus
        `handle_mm_fault()`, mm/memory.c, v6.1).

        A live PTE reaches the physical page. A missing PTE faults; the iomem mmap
        methods install no ``.fault`` handler, so the fault is SIGBUS and nothing ever
        refaults (spec §3.5). The first write to a MAP_PRIVATE page copies it
        (`wp_page_copy()`): later accesses reach the copy, never the device."""
        proc = vma.process
        if vma.unmapped or not proc.alive or not 0 <= offset < vma.size:
            return Access(ACCESS_SIGSEGV)
        if write and not vma.writable:
            return Access(ACCESS_SIGSEGV)
        index = offset >> PAGE_SHIFT
        state = vma.pte(index)
        if state == PTE_NONE:
            self.log.emit(SIGBUS, f"pid{proc.pid} SIGBUS at {vma.describe()} +{offset:#x}",
                          pid=proc.pid, vma=vma.id, path=vma.path, offset=offset,
                          phys=((vma.pgoff + index) << PAGE_SHIFT) | (offset & 0xfff))
            return Access(ACCESS_SIGBUS)
        if state == PTE_COW:
            return Access(ACCESS_OK, None, Target(TARGET_ANON, f"pid{proc.pid}"))
        if write and not vma.shared:
            vma.cow.add(index)
            return Access(ACCESS_OK, None, Target(TARGET_ANON, f"pid{proc.pid}"))
        phys = ((vma.pgoff + index) << PAGE_SHIFT) | (offset & (PAGE_SIZE - 1))
        target = self.physical(phys)
        self.record_access("mmap", proc, phys, 1, write, target, vma)
        return Access(ACCESS_OK, phys, target)

    def access_remote(self, vma: Vma, offset: int, length: int = 1, *,
                      write: bool = False) -> tuple[int, Target | None]:
        """Models what a debugger sees (`mem_rw()` of /proc/PID/mem, fs/proc/base.c, and
        `generic_ptrace_peekdata()`, kernel/ptrace.c, v6.1) of ``__access_remote_vm()``
        on an iomem VMA: nothing copied is -EIO, whatever the reason below it."""
        ret, target = self.generic_access_phys(vma, offset, length, write=write)
        return (-errno.EIO, None) if ret <= 0 else (ret, target)

    def generic_access_phys(self, vma: Vma, offset: int, length: int = 1, *,
                            write: bool = False) -> tuple[int, Target | None]:
        """Models `__access_remote_vm()` → ``vm_ops->access`` = `generic_access_phys()`,
        mm/memory.c, v6.1.

        get_user_pages refuses VM_IO|VM_PFNMAP, so the access goes through the VMA's
        ``.access``: -EINVAL without a live PTE (spec §3.5), or for a write through a
        read-only PTE. For sysfs mmaps the kernfs wrapper first refuses (-EINVAL) once
        the file has been removed. A page a private write copied is System RAM, which
        ioremap_prot() refuses with a warning (arch/x86/mm/ioremap.c): -EINVAL too.
        Returns (bytes or -errno, what was reached)."""
        if vma.unmapped or not vma.process.alive or not 0 <= offset < vma.size:
            return -errno.EIO, None
        if vma.access_gate is not None and not vma.access_gate():
            return -errno.EINVAL, None
        index = offset >> PAGE_SHIFT
        state = vma.pte(index)
        if state == PTE_NONE:
            return -errno.EINVAL, None
        # The PTE is writable only for shared writable mappings and for COW copies.
        if write and state == PTE_PFN and not (vma.shared and vma.writable):
            return -errno.EINVAL, None
        length = max(1, min(length, PAGE_SIZE - (offset & (PAGE_SIZE - 1))))
        if state == PTE_COW:
            self.log.emit(WARN, f"ioremap on RAM: the copied page at {vma.describe()} "
                          f"+{offset & ~(PAGE_SIZE - 1):#x}", function="ioremap_prot")
            return -errno.EINVAL, None
        phys = ((vma.pgoff + index) << PAGE_SHIFT) | (offset & (PAGE_SIZE - 1))
        target = self.physical(phys)
        self.record_access("ptrace", vma.process, phys, length, write, target, vma)
        return length, target

    # --- queries for hooks and oracles -----------------------------------------------

    def describe(self) -> str:
        """Narration: one line per user mapping, with which of its pages are still live."""
        lines = []
        for vma in [*self.vmas, *self.pending]:
            live = ", ".join(f"{vma.pgoff + lo:#x}-{vma.pgoff + hi:#x}"
                             for lo, hi in vma.live_spans()) or "none"
            state = "" if vma.linked else " (not yet linked)"
            lines.append(f"{vma.describe()}{state}: live pfns {live}")
        return "\n".join(lines)

    def live_pages_over(self, start: int, end: int, *, linked_only: bool = True
                        ) -> list[tuple[Vma, int, int]]:
        """Every (vma, first pfn, last pfn) whose live PTEs map a page holding a byte of
        [start, end] (inclusive). ``linked_only`` hides VMAs still in the mmap window,
        as any walk of i_mmap does."""
        first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        found = []
        for vma in self._all_vmas(linked_only):
            for lo, hi in vma.live_spans():
                pfn_lo, pfn_hi = vma.pgoff + lo, vma.pgoff + hi
                if pfn_hi >= first and pfn_lo <= last:
                    found.append((vma, max(pfn_lo, first), min(pfn_hi, last)))
        return found

    def _all_vmas(self, linked_only: bool) -> list[Vma]:
        if linked_only:
            return list(self.vmas)
        return [*self.vmas, *self.pending]
