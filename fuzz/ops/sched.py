"""Schedule lines: boot to an initcall level, step a kernel path, and a sleeping MUXED
request as a task.

A task handle (``rN``) comes from any line that creates a kernel path as a task:
``boot_to`` (the boot task), ``spawn_mmap``, the PCI lines run with ``mode=spawn`` (or
that blocked), ``request_muxed_region``. ``step`` gives it slices; whatever is still
pending when the Program ends runs to completion, lowest task first, and a task that can
never run again is a HANG (model/sched.py).
"""

from __future__ import annotations

from typing import Any

from iomemfuzz.fuzz.finding import DRIVER, PLATFORM
from iomemfuzz.fuzz.ops import (
    BLOCKED,
    EBADF,
    ILLEGAL,
    OK,
    PROGRAM,
    Context,
    Kind,
    Op,
    Outcome,
    arg,
    errno_outcome,
    op,
)
from iomemfuzz.model.boot import ALL_LEVELS
from iomemfuzz.model.ioport import IORESOURCE_MUXED, Resource
from iomemfuzz.model.kernel import REFUSED
from iomemfuzz.model.sched import BLOCKED as TASK_BLOCKED
from iomemfuzz.model.sched import DONE, Task

FAMILY = "sched"
# Slices one `step(until=...)` line may run before it gives up (model paths are short;
# this only bounds a line whose `until` text never appears).
STEP_BUDGET = 10_000
EBUSY = Outcome("EBUSY")
# Preemption points worth stopping a task at (suggestions for `step(until=...)`, for the
# decoder and the strategies): the race windows of spec §5.6 and their procfs twins.
POINTS = (
    "pci_sysfs_init: sysfs_initialized = 1",
    "pci_sysfs_init: after device",
    "before pci_create_sysfs_dev_files",
    "pci_create_attr: before sysfs_create_bin_file",
    "pci_remove_resource_files",
    "before pci_proc_attach_device",
    "pci_proc_init: proc_initialized = 1",
    "probe: before pci_request_regions",
    "do_initcall_level(late)",
    "mmap:populated",
)


def task_outcome(task: Task) -> Outcome:
    """What a task's line shows: its result once finished, "blocked" while it sleeps,
    ok while it is parked at a preemption point."""
    if task.state == DONE:
        return result_outcome(task.result)
    if task.state == TASK_BLOCKED:
        return BLOCKED
    return OK


def result_outcome(result: Any) -> Outcome:
    """A finished kernel path's return value as an Outcome: an int is 0 / -errno (a
    positive int, e.g. "bound", is success); anything else (a node, None) is ok."""
    if isinstance(result, int) and not isinstance(result, bool):
        return errno_outcome(result)
    return OK


def _task(ctx: Context, handle: int | None) -> Task | None:
    obj = ctx.resolve(handle)
    return obj if isinstance(obj, Task) else None


@op("boot_to", binds=True, family=FAMILY, schedule=True, controls_boot=True,
    who=PLATFORM)
class BootTo(Op):
    """Run the boot task until every initcall of ``level`` has run (``done``: to the
    end, after the async work). Binds the boot task. A Program with this line starts
    before boot; without it, it starts on a booted kernel."""

    level: str = arg(Kind.CHOICE, "done", choices=ALL_LEVELS)

    def run(self, ctx: Context) -> Outcome:
        kernel = ctx.kernel
        ret = kernel.boot_to(self.level)
        task = kernel.boot.task
        ctx.bind(task)
        if ret < 0 and task is not None and task.state == TASK_BLOCKED:
            return BLOCKED
        return errno_outcome(ret)


@op("step", family=FAMILY, schedule=True)
class Step(Op):
    """Give ``task`` ``n`` slices (one slice runs it to its next preemption point), or
    with ``until`` keep stepping until it parks at a point whose text contains it. The
    line shows the task's result once it finished, ``blocked`` while it sleeps."""

    task: int | None = arg(Kind.HANDLE, None)
    n: int = arg(Kind.INT, 1, lo=1, hi=1000)
    until: str = arg(Kind.NAME, "", choices=POINTS)

    def run(self, ctx: Context) -> Outcome:
        task = _task(ctx, self.task)
        if task is None:
            return EBADF
        kernel = ctx.kernel
        budget = STEP_BUDGET if self.until else self.n
        for _ in range(budget):
            state = kernel.step(task)
            if state in (DONE, TASK_BLOCKED):
                break
            if self.until and self.until in str(task.parked):
                break
        return task_outcome(task)


@op("request_muxed_region", binds=True, family=FAMILY, schedule=True, who=DRIVER)
class RequestMuxedRegion(Op):
    """`request_muxed_region()` (Super I/O style ports), run as a task that sleeps
    uninterruptibly while another MUXED holder has the range (B28). ``blocked`` when
    it went to sleep; the handle is the task."""

    start: int = arg(Kind.ADDR, 0x2E, hi=0xFFFF)
    n: int = arg(Kind.SIZE, 2, hi=0x10000)
    name: str = arg(Kind.NAME, "sio")

    def run(self, ctx: Context) -> Outcome:
        kernel = ctx.kernel
        path = kernel.request_muxed_region_task(kernel.roots[1], self.start, self.n,
                                                self.name or None, IORESOURCE_MUXED, PROGRAM)
        task = kernel.call(path, f"request_muxed_region({self.start:#x}, {self.n:#x})")
        ctx.bind(task)
        if task.state == DONE and task.result is REFUSED:
            return ILLEGAL
        if task.state == DONE and not isinstance(task.result, Resource):
            return EBUSY
        return task_outcome(task)
