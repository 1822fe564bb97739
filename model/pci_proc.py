"""/proc/bus/pci: `pci_proc_init()` and the per-device entries (drivers/pci/proc.c).

The procfs twin of the sysfs race (B27): ``proc_initialized`` is set by the
device_initcall, which then attaches every device on the klist, while
`pci_bus_add_device()` attaches the device it is adding. v6.1.0 had no lock and no
"already attached" check, so the same device (or bus directory) could be registered
twice: procfs WARNs "proc_dir_entry '...' already registered" and the loser's call fails
with -ENOMEM. 6.1-deb has the 2026 fix (``profile.proc_init_locked``): a mutex around
init and attach, ``procent`` checked first, and the initcall's walk under the rescan lock.

proc.c sits above the PCI core (pci_core.py), as in the kernel: it walks the core's
klist, and the core calls back only the functions
:class:`~iomemfuzz.model.pci_core.PciProcCalls` lists, which the facade (pci.py) wires
to a :class:`PciProc`.
"""

from __future__ import annotations

from iomemfuzz.model import errno
from iomemfuzz.model.event import DUP_FILENAME, Log
from iomemfuzz.model.pci_core import PciBus, PciCore, PciDev
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.sched import Mutex, Path, Point, Scheduler, mutex_lock, mutex_unlock


class ProcDirEntry:
    """Models `struct proc_dir_entry`, fs/proc/internal.h, v6.1: a name in a directory.
    ``data`` is the device a per-device entry serves (what open() hands the file);
    ``made_by`` the kernel path that registered it (model-only: a duplicate is told by
    which two paths met)."""

    __slots__ = ("children", "data", "is_dir", "made_by", "name", "parent", "removed")

    def __init__(self, name: str, parent: ProcDirEntry | None, *, is_dir: bool,
                 data: object = None, made_by: str = "") -> None:
        self.made_by = made_by
        self.name = name
        self.parent = parent
        self.is_dir = is_dir
        self.data = data
        self.children: dict[str, ProcDirEntry] = {}
        self.removed = False

    def path(self) -> str:
        parts: list[str] = []
        node: ProcDirEntry | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/proc/" + "/".join(reversed(parts))

    def __repr__(self) -> str:
        return f"<ProcDirEntry {self.path()}>"


class PciProc:
    """drivers/pci/proc.c: ``proc_initialized``, ``pci_proc_lock`` and the entries."""

    def __init__(self, profile: KernelProfile, log: Log, sched: Scheduler,
                 pci: PciCore) -> None:
        self.profile = profile
        self.log = log
        self.sched = sched
        self.pci = pci
        self.root = ProcDirEntry("", None, is_dir=True)
        self.bus_pci: ProcDirEntry | None = None  # /proc/bus/pci
        self.proc_initialized = False
        self.lock = Mutex("pci_proc_lock")

    # --- procfs primitives ----------------------------------------------------------------

    def proc_register(self, parent: ProcDirEntry, entry: ProcDirEntry) -> ProcDirEntry | None:
        """Models `proc_register()`, fs/proc/generic.c, v6.1: a name already in the
        directory WARNs and the new entry is dropped (NULL)."""
        if entry.name in parent.children:
            self.log.emit(DUP_FILENAME,
                          f"proc_dir_entry '{parent.name}/{entry.name}' already registered",
                          fs="procfs", path=f"{parent.path()}/{entry.name}",
                          dir=parent.path(), name=entry.name, by=entry.made_by,
                          existing_by=parent.children[entry.name].made_by)
            return None
        parent.children[entry.name] = entry
        return entry

    def proc_mkdir(self, name: str, parent: ProcDirEntry, by: str = "") -> ProcDirEntry | None:
        """Models `proc_mkdir()`, fs/proc/generic.c, v6.1: a directory (NULL on a
        duplicate)."""
        return self.proc_register(parent, ProcDirEntry(name, parent, is_dir=True,
                                                       made_by=by))

    def proc_remove(self, entry: ProcDirEntry | None) -> None:
        """Models `proc_remove()`, fs/proc/generic.c, v6.1 → `remove_proc_subtree()`:
        the entry and everything below it (NULL is a no-op)."""
        if entry is None or entry.removed:
            return
        for child in list(entry.children.values()):
            self.proc_remove(child)
        entry.removed = True
        parent = entry.parent
        if parent is not None and parent.children.get(entry.name) is entry:
            del parent.children[entry.name]

    def lookup(self, path: str) -> ProcDirEntry | None:
        """The live entry at "/proc/bus/pci/00/02.0", or None."""
        node = self.root
        for part in path.removeprefix("/proc").strip("/").split("/"):
            if not part:
                continue
            child = node.children.get(part)
            if child is None:
                return None
            node = child
        return node

    # --- drivers/pci/proc.c ---------------------------------------------------------------

    def _bus_dir_name(self, bus: PciBus) -> str:
        # pci_proc_domain() is 0 on x86 unless the domain is non-zero.
        if bus.domain:
            return f"{bus.domain:04x}:{bus.number:02x}"
        return f"{bus.number:02x}"

    def _attach_bus(self, bus: PciBus, by: str) -> Path:
        """The bus-directory half of attach (`__pci_proc_attach_bus()` in 6.1-deb).
        Unlocked (v6.1.0) it can lose a race and overwrite ``bus.procdir`` with NULL."""
        if not self.proc_initialized or self.bus_pci is None:
            return -errno.EACCES
        if bus.procdir is not None:
            return 0
        if not self.profile.proc_init_locked:
            yield Point("pci_proc_attach_device: before proc_mkdir(bus)", bus.name)
        bus.procdir = self.proc_mkdir(self._bus_dir_name(bus), self.bus_pci, by)
        return 0 if bus.procdir is not None else -errno.ENOMEM

    def pci_proc_attach_device(self, dev: PciDev, by: str) -> Path:
        """Models `pci_proc_attach_device()`, drivers/pci/proc.c, 6.1-deb / v6.1.0.

        Locked and idempotent with ``proc_init_locked`` (a device with ``procent`` is
        left alone); otherwise a second attach registers the same name again."""
        locked = self.profile.proc_init_locked
        if locked:
            yield from mutex_lock(self.sched, self.lock, "pci_proc_attach_device")
            if dev.procent is not None:
                mutex_unlock(self.sched, self.lock)
                return 0
        ret = yield from self._attach_bus(dev.bus, by)
        if ret == 0:
            if not locked:
                yield Point("pci_proc_attach_device: before proc_create_data", dev.name)
            name = f"{dev.devfn >> 3:02x}.{dev.devfn & 7:x}"
            bus_dir = dev.bus.procdir
            entry = None
            if isinstance(bus_dir, ProcDirEntry):
                entry = self.proc_register(bus_dir, ProcDirEntry(name, bus_dir, is_dir=False,
                                                                 data=dev, made_by=by))
            if entry is None:
                ret = -errno.ENOMEM
            else:
                dev.procent = entry
        if locked:
            mutex_unlock(self.sched, self.lock)
        return ret

    def pci_proc_detach_device(self, dev: PciDev) -> None:
        """Models `pci_proc_detach_device()`, v6.1: remove the entry, clear the pointer.
        (6.1-deb takes pci_proc_lock; the callers hold the rescan lock, and the model
        does not yield here, so the lock changes nothing observable.)"""
        entry = dev.procent
        self.proc_remove(entry if isinstance(entry, ProcDirEntry) else None)
        dev.procent = None

    def pci_proc_init(self) -> Path:
        """Models `pci_proc_init()` (device_initcall), drivers/pci/proc.c, 6.1-deb / v6.1.0.

        6.1-deb: /proc/bus/pci and ``proc_initialized`` under pci_proc_lock, then the
        klist walk under the rescan lock. v6.1.0: the same with no lock at all, so it
        meets a concurrent pci_bus_add_device exactly like pci_sysfs_init does (B27)."""
        locked = self.profile.proc_init_locked
        if locked:
            yield from mutex_lock(self.sched, self.lock, "pci_proc_init")
        bus_dir = self.root.children.get("bus") or self.proc_mkdir("bus", self.root)
        assert bus_dir is not None
        self.bus_pci = self.proc_mkdir("pci", bus_dir)
        if self.bus_pci is not None:
            self.proc_register(self.bus_pci,
                               ProcDirEntry("devices", self.bus_pci, is_dir=False))
        self.proc_initialized = True
        if locked:
            mutex_unlock(self.sched, self.lock)
            yield from mutex_lock(self.sched, self.pci.rescan_remove_lock, "pci_proc_init")
        else:
            yield Point("pci_proc_init: proc_initialized = 1")
        dev: PciDev | None = None
        while True:
            dev = self.pci.pci_get_device(dev)
            if dev is None:
                break
            yield from self.pci_proc_attach_device(dev, "pci_proc_init")
            if not locked:
                yield Point("pci_proc_init: after device", dev.name)
        if locked:
            mutex_unlock(self.sched, self.pci.rescan_remove_lock)
        return 0

    def entries(self) -> list[str]:
        """Every per-device entry path, sorted (narration and oracles)."""
        out: list[str] = []
        if self.bus_pci is None:
            return out
        for bus_dir in self.bus_pci.children.values():
            for entry in bus_dir.children.values():
                out.append(entry.path())
        return sorted(out)
