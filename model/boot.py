"""Boot: the initcall levels in order, with the modelled initcalls at each (spec §6.1).

Boot is itself a kernel path (a task), so a Program can stop it at any initcall and run
other paths in between — a hot-add, an async host bridge probe, a usermode helper —
exactly where the real kernel could. The table :data:`INITCALLS` is the whole boot order
the model knows; within a level the order is link order (drivers/ before arch/x86/pci).

Async work: a host bridge whose driver probes asynchronously (DT controllers, vmd,
hv_pci, ACPI dependency work) is *spawned* as its own task at device_initcall and runs
whenever the schedule says; boot waits for it only at the very end
(`async_synchronize_full()` before /init). That is the window in which
``pci_sysfs_init`` (late_initcall) meets ``pci_bus_add_device`` (B1, B2).

A Kernel that starts booted runs this path and then its async tasks, lowest task id
first, to completion — nothing interleaves, so the result is the ordinary boot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iomemfuzz.model import errno
from iomemfuzz.model.event import INITCALL, Log
from iomemfuzz.model.profile import KernelProfile
from iomemfuzz.model.sched import DONE, Path, Point, Scheduler, Task, TasksWait

# Initcall levels in the order do_initcalls() runs them. "rootfs" is the rootfs_initcall
# slot between fs and device; "done" is after every level (async_synchronize_full, /init).
LEVELS: tuple[str, ...] = ("pure", "core", "postcore", "arch", "subsys", "fs", "rootfs",
                           "device", "late")
DONE_LEVEL = "done"
ALL_LEVELS: tuple[str, ...] = (*LEVELS, DONE_LEVEL)

# (level, initcall name, Boot method that runs it), in boot order. Levels without a
# modelled initcall (pure, core, arch) still pass in order.
INITCALLS: tuple[tuple[str, str, str], ...] = (
    ("postcore", "pci_driver_init", "_pci_driver_init"),
    ("subsys", "acpi_init", "_acpi_init"),
    ("subsys", "pci_subsys_init", "_pci_subsys_init"),
    ("fs", "iomem_init_inode", "_iomem_init_inode"),
    ("fs", "chr_dev_init", "_chr_dev_init"),
    ("fs", "pcibios_assign_resources", "_pcibios_assign_resources"),
    ("rootfs", "populate_rootfs", "_populate_rootfs"),
    ("device", "pci_proc_init", "_pci_proc_init"),
    ("device", "pcie_portdrv_init", "_pcie_portdrv_init"),
    ("device", "pci_host_probe (async)", "_async_host_probes"),
    ("device", "builtin drivers", "_builtin_drivers"),
    ("late", "pci_sysfs_init", "_pci_sysfs_init"),
)


# The preemption point before each initcall (Points are immutable values, so one per
# initcall serves every boot).
_INITCALL_POINTS: dict[tuple[str, str], Point] = {
    (level, name): Point(f"do_initcall_level({level})", name)
    for level, name, _method in INITCALLS
}
# INITCALLS grouped by level, in LEVELS order: (level index, level, ((name, method,
# preemption point), ...)).
_BY_LEVEL: tuple[tuple[int, str, tuple[tuple[str, str, Point], ...]], ...] = tuple(
    (i, level, tuple((name, method, _INITCALL_POINTS[level, name])
                     for lvl, name, method in INITCALLS if lvl == level))
    for i, level in enumerate(LEVELS)
)


def level_index(level: str) -> int:
    """Position of ``level`` in :data:`ALL_LEVELS`; ValueError for an unknown name."""
    try:
        return ALL_LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown initcall level {level!r} "
                         f"(known: {', '.join(ALL_LEVELS)})") from None


class Boot:
    """The boot task and what it has reached.

    ``completed`` is the index in :data:`ALL_LEVELS` of the last level whose initcalls
    all ran (-1 before any). ``devmem`` is engineer B's Devmem (iomem_init_inode,
    chr_dev_init), or None when the Kernel has no /dev/mem model."""

    def __init__(self, profile: KernelProfile, log: Log, sched: Scheduler, pci: Any,
                 devmem: Any = None) -> None:
        self.profile = profile
        self.log = log
        self.sched = sched
        self.pci = pci
        self.devmem = devmem
        self.task: Task | None = None
        self.completed = -1
        self.current: str | None = None  # the initcall running (or about to)
        self.rootfs_populated = False
        self.async_tasks: list[Task] = []

    # --- state ----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.state == DONE

    @property
    def level(self) -> str | None:
        """The last fully completed level (None before boot)."""
        return ALL_LEVELS[self.completed] if self.completed >= 0 else None

    @property
    def userspace_ready(self) -> bool:
        """Can userspace code run? From the rootfs slot on (usermode helpers; spec §6.2),
        or from the start under the test profile ``early_userspace``."""
        return self.profile.early_userspace or self.rootfs_populated

    # --- the path -----------------------------------------------------------------------

    def path(self) -> Path:
        """Models `kernel_init()` → `do_initcalls()` (init/main.c, v6.1), then
        `async_synchronize_full()`. Yields before every initcall."""
        for index, level, initcalls in _BY_LEVEL:
            for name, method, point in initcalls:
                self.current = name
                yield point
                fn: Callable[[], Any] = getattr(self, method)
                ret = fn()
                if hasattr(ret, "send"):
                    ret = yield from ret
                self.log.emit(INITCALL, f"initcall {name} returned {ret}", level=level,
                              name=name, ret=ret)
            self.completed = index
        self.current = "async_synchronize_full"
        yield Point("kernel_init", "async_synchronize_full")
        pending = tuple(t for t in self.async_tasks if t.state != DONE)
        if pending:
            yield TasksWait(pending, "async_synchronize_full")
        self.current = None
        self.completed = level_index(DONE_LEVEL)
        return 0

    def start(self) -> Task:
        """Spawn the boot task (once)."""
        if self.task is None:
            self.task = self.sched.spawn(self.path(), "kernel_init")
        return self.task

    def boot_to(self, level: str) -> int:
        """Run the boot task until every initcall of ``level`` has run ("done": to the
        end, after the async work). Only the boot task runs; 0 once reached (or already
        past), -EAGAIN if boot is blocked first (a lock another task holds, or async
        work nobody has run)."""
        target = level_index(level)
        task = self.start()
        if self.completed >= target:
            return 0
        self.sched.run(task, until=lambda _t: self.completed >= target)
        return 0 if self.completed >= target else -errno.EAGAIN

    def boot_fully(self) -> int:
        """Boot to the end with nothing else interleaved: the boot task and the async
        work it spawned, always the lowest-numbered runnable one first (the drain order
        of the scheduler). 0, or -EAGAIN if boot cannot finish on its own."""
        task = self.start()
        step = self.sched.step
        while task.state != DONE:
            # The boot task is the lowest-numbered; ask the async ones only when it
            # cannot run (waiting for them), without building a list per slice. (It is
            # not DONE here, so parked at a plain preemption point means runnable.)
            if type(task.parked) is Point or task.runnable():
                step(task)
                continue
            waiting = next((t for t in self.async_tasks if t.runnable()), None)
            if waiting is None:
                return -errno.EAGAIN
            step(waiting)
        return 0

    def async_task(self, bus_name: str) -> Task | None:
        """The async host-probe task boot spawned for root bus ``bus_name`` ("0001:00")
        while it has not finished, so a Program can step it."""
        for t in self.async_tasks:
            if t.name == f"pci_host_probe {bus_name}" and t.state != DONE:
                return t
        return None

    # --- the initcalls --------------------------------------------------------------------

    def _pci_driver_init(self) -> int:
        return self.pci.pci_driver_init()

    def _acpi_init(self) -> Path:
        return self.pci.acpi_scan_roots()

    def _pci_subsys_init(self) -> int:
        return self.pci.pcibios_resource_survey()

    def _iomem_init_inode(self) -> int:
        return self.devmem.resources.iomem_init_inode() if self.devmem is not None else 0

    def _chr_dev_init(self) -> int:
        return self.devmem.chr_dev_init() if self.devmem is not None else 0

    def _pcibios_assign_resources(self) -> int:
        return self.pci.pcibios_assign_resources()

    def _populate_rootfs(self) -> int:
        """Models `populate_rootfs()` → `usermodehelper_enable()` (init/initramfs.c)."""
        self.rootfs_populated = True
        return 0

    def _pci_proc_init(self) -> Path:
        return self.pci.proc.pci_proc_init()

    def _pcie_portdrv_init(self) -> int:
        """Models `pcie_portdrv_init()` (device_initcall): pciehp handles slot events
        from here on."""
        self.pci.state.pciehp_ready = True
        return 0

    def _async_host_probes(self) -> int:
        """The async host bridge drivers register; each probe is queued as its own task
        (`async_schedule_dev()` → `pci_host_probe()`). A bus someone already probed is
        skipped."""
        for bus in self.pci.async_buses():
            if bus.key in self.pci.state.probed_hosts:
                continue
            self.async_tasks.append(
                self.sched.spawn(self.pci.pci_host_probe(bus), f"pci_host_probe {bus.name}"))
        return 0

    def _builtin_drivers(self) -> Path:
        return self.pci.register_builtin_drivers()

    def _pci_sysfs_init(self) -> Path:
        return self.pci.files.pci_sysfs_init()
