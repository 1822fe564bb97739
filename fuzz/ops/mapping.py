"""User mappings of physical memory: processes, /dev/mem, sysfs ``resourceN`` and procfs
BAR files, mmap / munmap / accesses through a mapping, read / write / lseek, and the
driver claims that revoke them (drivers/char/mem.c, drivers/pci/pci-sysfs.c,
drivers/pci/proc.c, mm/).

Every line runs as userspace would: a process (``proc``; nil = init, pid 1, full root)
opens a file, maps it, touches it. ``touch`` returns what the access reached
(``= 0000:00:03.0/bar0+0x10``, ``= ram``, ``= unbacked``, ``= anon``) or ``SIGBUS``;
``spawn_mmap`` runs the mmap path as a task that parks between filling the PTEs and
linking the VMA (spec §4.7), so a claim can run in that window.

Before userspace can run (the rootfs initcall slot, spec §6.2) every line that acts as a
process returns EAGAIN.
"""

from __future__ import annotations

from iomemfuzz.fuzz.finding import DRIVER
from iomemfuzz.fuzz.ops import (
    EBADF,
    ILLEGAL,
    OK,
    Context,
    Kind,
    Op,
    Outcome,
    arg,
    errno_outcome,
    op,
    value_outcome,
)
from iomemfuzz.model import errno
from iomemfuzz.model.ioport import IORESOURCE_EXCLUSIVE
from iomemfuzz.model.kernel import REFUSED
from iomemfuzz.model.mm import (
    ACCESS_OK,
    CAP_SYS_ADMIN,
    CAP_SYS_RAWIO,
    PAGE_SHIFT,
    PAGE_SIZE,
    TARGET_BAR,
    File,
    Process,
    Target,
    Vma,
)
from iomemfuzz.model.pci_mmap import (
    PCIIOC_MMAP_IS_IO,
    PCIIOC_MMAP_IS_MEM,
    PCIIOC_WRITE_COMBINE,
    SEEK_CUR,
    SEEK_END,
    SEEK_SET,
)
from iomemfuzz.model.sched import Task

FAMILY = "mapping"

CAPS = {
    "root": frozenset({CAP_SYS_RAWIO, CAP_SYS_ADMIN}),
    "no_rawio": frozenset({CAP_SYS_ADMIN}),  # root with CAP_SYS_RAWIO dropped
    "none": frozenset(),
}
IOCTLS = {"mem": (PCIIOC_MMAP_IS_MEM, 0), "io": (PCIIOC_MMAP_IS_IO, 0),
          "wc": (PCIIOC_WRITE_COMBINE, 1), "uc": (PCIIOC_WRITE_COMBINE, 0)}
WHENCE = {"set": SEEK_SET, "cur": SEEK_CUR, "end": SEEK_END}
# Bounds that keep one line's work small (page loops run per page).
MAX_MAP = 0x200000  # 512 pages: the whole low MiB and then some
MAX_RW = 0x10000
# Which lines' handles each handle field expects (the decoder offers those first).
PROCS = ("process",)
FILES = ("open_devmem", "open_resource", "open_procfs", "open_legacy")
MAPPINGS = ("mmap", "spawn_mmap")
EAGAIN = Outcome("EAGAIN")
ENOENT = Outcome("ENOENT")


def target_text(target: Target | None) -> str:
    """What an access reached, as one Program-text token."""
    if target is None:
        return "nothing"
    if target.kind == TARGET_BAR:
        return f"{target.owner}/bar{target.bar}+{target.offset:#x}"
    return target.kind


def _userspace(ctx: Context) -> bool:
    return ctx.kernel.userspace_ready


def _proc(ctx: Context, handle: int | None) -> Process | None:
    """The process a line acts as: nil is init (pid 1, made on first use)."""
    if handle is None:
        return ctx.kernel.init_process()
    obj = ctx.resolve(handle)
    return obj if isinstance(obj, Process) else None


def _file(ctx: Context, handle: int | None) -> File | None:
    obj = ctx.resolve(handle)
    return obj if isinstance(obj, File) else None


def _vma(ctx: Context, handle: int | None) -> Vma | None:
    """A mapping handle: an mmap line's VMA, or a spawn_mmap task's once it finished."""
    obj = ctx.resolve(handle)
    if isinstance(obj, Task):
        obj = obj.result if obj.done else None
    return obj if isinstance(obj, Vma) else None


@op("process", binds=True, family=FAMILY)
class NewProcess(Op):
    """Start a user process with ``caps`` (root, root without CAP_SYS_RAWIO, or none)."""

    caps: str = arg(Kind.CHOICE, "root", choices=tuple(CAPS))

    def run(self, ctx: Context) -> Outcome:
        if not _userspace(ctx):
            return EAGAIN
        ctx.bind(ctx.kernel.fork(CAPS.get(self.caps, CAPS["none"])))
        return OK


@op("exit", family=FAMILY)
class Exit(Op):
    """The process exits: every mapping is unmapped and every file closed."""

    proc: int | None = arg(Kind.HANDLE, None, choices=PROCS)

    def run(self, ctx: Context) -> Outcome:
        proc = _proc(ctx, self.proc)
        if proc is None:
            return EBADF
        return errno_outcome(ctx.kernel.exit(proc))


@op("open_devmem", binds=True, family=FAMILY)
class OpenDevmem(Op):
    """open("/dev/mem", O_RDWR or O_RDONLY): `open_mem()`."""

    proc: int | None = arg(Kind.HANDLE, None, choices=PROCS)
    mode: str = arg(Kind.CHOICE, "rw", choices=("rw", "ro"))

    def run(self, ctx: Context) -> Outcome:
        proc = _proc(ctx, self.proc)
        if proc is None:
            return EBADF
        if not _userspace(ctx):
            return EAGAIN
        file = ctx.kernel.open_mem(proc, self.mode == "rw")
        if isinstance(file, int):
            return errno_outcome(file)
        ctx.bind(file)
        return OK


@op("open_resource", binds=True, family=FAMILY)
class OpenResource(Op):
    """open("/sys/bus/pci/devices/DEV/resourceBAR[_wc]"): `sysfs_kf_bin_open()`."""

    dev: str = arg(Kind.NAME, "0000:00:02.0")
    bar: int = arg(Kind.INT, 0, hi=5)
    variant: str = arg(Kind.CHOICE, "uc", choices=("uc", "wc"))
    proc: int | None = arg(Kind.HANDLE, None, choices=PROCS)

    def run(self, ctx: Context) -> Outcome:
        proc = _proc(ctx, self.proc)
        if proc is None:
            return EBADF
        if not _userspace(ctx):
            return EAGAIN
        dev = ctx.kernel.pci.find(self.dev)
        if dev is None:
            return ENOENT
        suffix = "_wc" if self.variant == "wc" else ""
        file = ctx.kernel.open_sysfs(proc, f"{dev.path()}/resource{self.bar}{suffix}")
        if isinstance(file, int):
            return errno_outcome(file)
        ctx.bind(file)
        return OK


@op("open_legacy", binds=True, family=FAMILY)
class OpenLegacy(Op):
    """open(".../pci_bus/BUS/legacy_mem" or "legacy_io") (HAVE_PCI_LEGACY arches only:
    the profile's ``have_pci_legacy``)."""

    bus: str = arg(Kind.NAME, "0000:00")
    file: str = arg(Kind.CHOICE, "mem", choices=("mem", "io"))
    proc: int | None = arg(Kind.HANDLE, None, choices=PROCS)

    def run(self, ctx: Context) -> Outcome:
        proc = _proc(ctx, self.proc)
        if proc is None:
            return EBADF
        if not _userspace(ctx):
            return EAGAIN
        file = ctx.kernel.open_legacy(proc, self.bus, self.file)
        if isinstance(file, int):
            return errno_outcome(file)
        ctx.bind(file)
        return OK


@op("open_procfs", binds=True, family=FAMILY)
class OpenProcfs(Op):
    """open("/proc/bus/pci/BB/DD.F"): `proc_bus_pci_open()` (mmaps start in I/O mode)."""

    dev: str = arg(Kind.NAME, "0000:00:02.0")
    proc: int | None = arg(Kind.HANDLE, None, choices=PROCS)

    def run(self, ctx: Context) -> Outcome:
        proc = _proc(ctx, self.proc)
        if proc is None:
            return EBADF
        if not _userspace(ctx):
            return EAGAIN
        file = ctx.kernel.open_proc_bus_pci(proc, self.dev)
        if isinstance(file, int):
            return errno_outcome(file)
        ctx.bind(file)
        return OK


@op("procfs_ioctl", family=FAMILY)
class ProcfsIoctl(Op):
    """ioctl on a procfs bus file: PCIIOC_MMAP_IS_MEM / _IS_IO / PCIIOC_WRITE_COMBINE."""

    file: int | None = arg(Kind.HANDLE, None, choices=("open_procfs",))
    cmd: str = arg(Kind.CHOICE, "mem", choices=tuple(IOCTLS))

    def run(self, ctx: Context) -> Outcome:
        file = _file(ctx, self.file)
        if file is None or file.closed:
            return EBADF
        if not file.path.startswith("/proc/"):
            return Outcome("ENOTTY")  # kernfs and /dev/mem have no ioctl
        cmd, value = IOCTLS.get(self.cmd, IOCTLS["mem"])
        return errno_outcome(ctx.kernel.proc_ioctl(file, cmd, value))


class _MapArgs(Op):
    """Shared fields and checks of mmap and spawn_mmap."""

    __slots__ = ()

    def prepare(self, ctx: Context) -> tuple[File | None, int, int, Outcome | None]:
        """(file, pgoff, npages, refusal): `ksys_mmap_pgoff()` / `do_mmap()`'s argument
        checks before the file's ->mmap."""
        file = _file(ctx, self.file)
        if file is None:
            return None, 0, 0, EBADF
        if not _userspace(ctx):
            return None, 0, 0, EAGAIN
        if self.offset & (PAGE_SIZE - 1) or self.length == 0:
            return None, 0, 0, errno_outcome(-errno.EINVAL)
        npages = (self.length + PAGE_SIZE - 1) >> PAGE_SHIFT
        return file, self.offset >> PAGE_SHIFT, npages, None


@op("mmap", binds=True, family=FAMILY)
class Mmap(_MapArgs):
    """mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED or MAP_PRIVATE, file, offset)."""

    file: int | None = arg(Kind.HANDLE, None, choices=FILES)
    offset: int = arg(Kind.ADDR, 0)
    length: int = arg(Kind.SIZE, PAGE_SIZE, lo=0, hi=MAX_MAP)
    flags: str = arg(Kind.CHOICE, "shared", choices=("shared", "private"))
    prot: str = arg(Kind.CHOICE, "rw", choices=("rw", "ro"))

    def run(self, ctx: Context) -> Outcome:
        file, pgoff, npages, refusal = self.prepare(ctx)
        if refusal is not None:
            return refusal
        assert file is not None
        vma = ctx.kernel.mmap(file, pgoff, npages, self.flags == "shared",
                              self.prot == "rw")
        if isinstance(vma, int):
            return errno_outcome(vma)
        ctx.bind(vma)
        return OK


@op("spawn_mmap", binds=True, family=FAMILY, schedule=True)
class SpawnMmap(_MapArgs):
    """mmap as a task (not yet run): it parks after ->mmap filled the PTEs and before
    the VMA is linked into i_mmap. Its handle names the mapping once it finished."""

    file: int | None = arg(Kind.HANDLE, None, choices=FILES)
    offset: int = arg(Kind.ADDR, 0)
    length: int = arg(Kind.SIZE, PAGE_SIZE, lo=0, hi=MAX_MAP)
    flags: str = arg(Kind.CHOICE, "shared", choices=("shared", "private"))

    def run(self, ctx: Context) -> Outcome:
        file, pgoff, npages, refusal = self.prepare(ctx)
        if refusal is not None:
            return refusal
        assert file is not None
        ctx.bind(ctx.kernel.mmap_task(file, pgoff, npages, self.flags == "shared"))
        return OK


@op("munmap", family=FAMILY)
class Munmap(Op):
    """munmap() of a whole mapping."""

    vma: int | None = arg(Kind.HANDLE, None, choices=MAPPINGS)

    def run(self, ctx: Context) -> Outcome:
        vma = _vma(ctx, self.vma)
        if vma is None:
            return EBADF
        return errno_outcome(ctx.kernel.munmap(vma))


@op("touch", family=FAMILY)
class Touch(Op):
    """A load or store at ``offset`` into a mapping: what it reached, or SIGBUS."""

    vma: int | None = arg(Kind.HANDLE, None, choices=MAPPINGS)
    offset: int = arg(Kind.ADDR, 0)
    access: str = arg(Kind.CHOICE, "read", choices=("read", "write"))

    def run(self, ctx: Context) -> Outcome:
        vma = _vma(ctx, self.vma)
        if vma is None:
            return EBADF
        result = ctx.kernel.touch(vma, self.offset, self.access == "write")
        if result.status != ACCESS_OK:
            return Outcome(result.status)
        return value_outcome(target_text(result.target))


@op("ptrace_access", family=FAMILY)
class PtraceAccess(Op):
    """PTRACE_PEEKDATA / POKEDATA (or /proc/PID/mem) at ``offset`` into a mapping:
    `generic_access_phys()`."""

    vma: int | None = arg(Kind.HANDLE, None, choices=MAPPINGS)
    offset: int = arg(Kind.ADDR, 0)
    access: str = arg(Kind.CHOICE, "read", choices=("read", "write"))

    def run(self, ctx: Context) -> Outcome:
        vma = _vma(ctx, self.vma)
        if vma is None:
            return EBADF
        ret, target = ctx.kernel.access_remote(vma, self.offset, 4,
                                               self.access == "write")
        if ret < 0:
            return errno_outcome(ret)
        return value_outcome(target_text(target))


class _ReadWrite(Op):
    __slots__ = ()

    def call(self, ctx: Context, write: bool) -> Outcome:
        file = _file(ctx, self.file)
        if file is None or file.closed:
            return EBADF
        if not _userspace(ctx):
            return EAGAIN
        fn = file.f_op.write if write else file.f_op.read
        if fn is None or not (file.writable if write else file.readable):
            return errno_outcome(-errno.EINVAL if fn is None else -errno.EBADF)
        kernel = ctx.kernel
        ret = (kernel.pwrite if write else kernel.pread)(file, self.offset, self.count)
        return errno_outcome(ret) if ret < 0 else value_outcome(ret)


@op("read", family=FAMILY)
class Read(_ReadWrite):
    """pread(file, count, offset): returns the byte count (zero-filled or real)."""

    file: int | None = arg(Kind.HANDLE, None, choices=FILES)
    offset: int = arg(Kind.ADDR, 0)
    count: int = arg(Kind.SIZE, 4, lo=0, hi=MAX_RW)

    def run(self, ctx: Context) -> Outcome:
        return self.call(ctx, False)


@op("write", family=FAMILY)
class Write(_ReadWrite):
    """pwrite(file, count, offset): returns the byte count."""

    file: int | None = arg(Kind.HANDLE, None, choices=FILES)
    offset: int = arg(Kind.ADDR, 0)
    count: int = arg(Kind.SIZE, 4, lo=0, hi=MAX_RW)

    def run(self, ctx: Context) -> Outcome:
        return self.call(ctx, True)


@op("lseek", family=FAMILY)
class Lseek(Op):
    """lseek(file, offset, whence): the new position (B11b: SEEK_END on resourceN)."""

    file: int | None = arg(Kind.HANDLE, None, choices=FILES)
    offset: int = arg(Kind.ADDR, 0)
    whence: str = arg(Kind.CHOICE, "set", choices=tuple(WHENCE))

    def run(self, ctx: Context) -> Outcome:
        file = _file(ctx, self.file)
        if file is None or file.closed:
            return EBADF
        if file.f_op.llseek is None:
            return errno_outcome(-errno.EINVAL)
        offset = self.offset - (1 << 64) if self.offset >> 63 else self.offset
        ret = ctx.kernel.llseek(file, offset, WHENCE.get(self.whence, SEEK_SET))
        return errno_outcome(ret) if ret < 0 else value_outcome(ret)


@op("close", family=FAMILY)
class Close(Op):
    """close(file): mappings keep the file alive."""

    file: int | None = arg(Kind.HANDLE, None, choices=FILES)

    def run(self, ctx: Context) -> Outcome:
        file = _file(ctx, self.file)
        if file is None:
            return EBADF
        return errno_outcome(ctx.kernel.close(file))


@op("request_mem_region", binds=True, family=FAMILY, who=DRIVER)
class RequestMemRegion(Op):
    """A driver ``name`` claims [start, start+n-1]: `request_mem_region()` (or
    `request_mem_region_exclusive()`), which revokes user mappings of the range."""

    start: int = arg(Kind.ADDR, 0)
    n: int = arg(Kind.SIZE, PAGE_SIZE)
    name: str = arg(Kind.NAME, "drv")
    exclusive: str = arg(Kind.CHOICE, "no", choices=("no", "yes"))

    def run(self, ctx: Context) -> Outcome:
        kernel = ctx.kernel
        flags = IORESOURCE_EXCLUSIVE if self.exclusive == "yes" else 0
        holder = self.name or "drv"
        res = kernel.request_region(kernel.roots[0], self.start, self.n,
                                    self.name or None, flags, holder)
        if res is REFUSED:
            return ILLEGAL
        if res is None or not hasattr(res, "start"):
            return Outcome("EBUSY")
        ctx.bind(res)
        return OK


@op("release_mem_region", family=FAMILY, who=DRIVER)
class ReleaseMemRegion(Op):
    """Driver ``name`` releases [start, start+n-1]: `release_mem_region()` (restores no
    mapping)."""

    start: int = arg(Kind.ADDR, 0)
    n: int = arg(Kind.SIZE, PAGE_SIZE)
    name: str = arg(Kind.NAME, "drv")

    def run(self, ctx: Context) -> Outcome:
        kernel = ctx.kernel
        ret = kernel.release_region(kernel.roots[0], self.start, self.n, self.name or "drv")
        return ILLEGAL if ret is REFUSED else OK
