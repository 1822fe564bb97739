"""Kernel paths as generators, and the deterministic scheduler that interleaves them.

A *kernel path* (boot, ``pci_sysfs_init``, a hot-add, a driver probe, an mmap) is a Python
generator that yields at the points where the real kernel can be preempted or put to
sleep *and* where another path's interleaving changes the outcome. What it yields says
where it is parked:

* a :class:`Point` (or any object without ``ready()``, e.g. a plain string) is an
  ordinary preemption point: the task can always continue;
* a wait (:class:`LockWait`, :class:`MuxedWait`, :class:`TasksWait`) is a sleep: the
  task is *blocked* until the wait's ``ready()`` is true, and stepping it does nothing.
  :data:`WOULD_BLOCK` (yielded by the resource tree's ``request_region_task``) is a
  MuxedWait: the MUXED sleeper wakes at the next MUXED release.

The return value of the generator is the path's result (an int errno, an object).

Scheduling is data (races are data, not timing): a Program's spawn/step lines say
which task runs one slice next. At the end of a Program, :meth:`Scheduler.drain` runs the
pending tasks in a fixed order: **always the lowest-numbered runnable task, one slice at a
time**. That is run-to-completion of the oldest task, except that a task that blocks
hands the CPU to the next-oldest runnable one and gets it back as soon as it can run
again. Tasks still blocked when nothing can run are reported as HANG events (spec B28:
a MUXED waiter whose holder never releases sleeps forever).

Locks exist only where the kernel serialises: see :class:`Mutex`. Resource-tree and
kernfs operations need no lock object because none of them yields (``resource_lock`` and
``kernfs_rwsem`` make them atomic with respect to each other, and the model only switches
tasks at yields). ``pci_sysfs_init`` takes no lock at all, and neither does the model.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

from iomemfuzz.model.event import HANG, Log

# A kernel path: yields preemption points / waits, returns its result.
Path = Generator[Any, None, Any]

# Task states (Task.state).
NEW = "new"  # spawned, not yet stepped
READY = "ready"  # parked at a preemption point, or at a wait that is now satisfied
BLOCKED = "blocked"  # parked at a wait that is not satisfied
DONE = "done"  # the generator returned

# Slices drain() allows before deciding a path loops forever. Model paths are finite
# (every loop over devices or BARs is bounded), so hitting this is a bug in the model.
DRAIN_BUDGET = 1_000_000


@dataclass(frozen=True, slots=True, init=False)
class Point:
    """A preemption point: where a path may lose the CPU. ``where`` names the kernel
    function and the spot ("pci_bus_add_device: before pci_create_sysfs_dev_files");
    ``what`` names the object being worked on ("0000:00:02.0 resource0")."""

    where: str
    what: str = ""

    def __init__(self, where: str, what: str = "") -> None:
        # A path makes a Point at nearly every slice. The generated __init__ of a frozen
        # dataclass sets each field with object.__setattr__; the slots' own descriptors
        # do the same (and bypass the frozen __setattr__ the same way) for a third less.
        _set_where(self, where)
        _set_what(self, what)

    def ready(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"{self.where} ({self.what})" if self.what else self.where


_set_where = Point.where.__set__  # type: ignore[attr-defined]
_set_what = Point.what.__set__  # type: ignore[attr-defined]


class Mutex:
    """Models a sleeping lock (`struct mutex`, kernel/locking/mutex.c, v6.1).

    Only locks the kernel really takes on the modelled paths get one:
    ``pci_rescan_remove_lock``, each device's ``device_lock``, 6.1-deb's
    ``pci_proc_lock``. Not recursive: a task locking a mutex it holds waits forever,
    which the scheduler reports as a HANG, as lockdep would report the self-deadlock."""

    __slots__ = ("name", "owner")

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: Task | None = None

    def __repr__(self) -> str:
        holder = f"held by task {self.owner.id}" if self.owner else "free"
        return f"Mutex({self.name!r}, {holder})"


@dataclass(frozen=True, slots=True)
class LockWait:
    """Parked in `mutex_lock()` because another task holds ``lock``."""

    lock: Mutex
    where: str = ""

    def ready(self) -> bool:
        return self.lock.owner is None

    def __str__(self) -> str:
        owner = f" held by task {self.lock.owner.id}" if self.lock.owner else ""
        return f"{self.where}: mutex_lock({self.lock.name}){owner}"


# Where a 6.1 MUXED waiter can lose the CPU in `__request_region()`: after write_unlock(),
# before set_current_state() (ResourceTree.request_region_task yields it).
MUXED_UNLOCKED = Point("__request_region: after write_unlock, before set_current_state")


@dataclass(frozen=True, slots=True)
class MuxedWait:
    """Parked in `__request_region()` on ``muxed_resource_wait``: a MUXED conflict.

    Ready once any MUXED region was released after the task went to sleep (the kernel's
    `__release_region` does ``wake_up(&muxed_resource_wait)`` for every MUXED release,
    and the woken task retries its whole lookup)."""

    sched: Scheduler
    generation: int
    where: str = ""
    # A MUXED release happened after the task dropped resource_lock and before it went
    # to sleep: its wake-up found the task still running and was lost (6.1).
    missed_wakeup: bool = False

    def ready(self) -> bool:
        return self.sched.muxed_generation != self.generation

    def __str__(self) -> str:
        return f"{self.where}: sleeping on muxed_resource_wait"


class WouldBlock:
    """Type of :data:`WOULD_BLOCK`; it has no truth value so ``if res:`` cannot mistake a
    sleeping request for a granted one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "WOULD_BLOCK"

    def __bool__(self) -> bool:
        raise TypeError("WOULD_BLOCK has no truth value; compare it with `is`")


# A MUXED request met a MUXED busy node: the caller sleeps on the global wait queue and
# retries (see ResourceTree._request_region_locked, model/resource_region.py), so a
# kernel path yields this and the scheduler parks it as a MuxedWait. It lives here, with
# the waits, so that the scheduler needs nothing from the resource tree; the tree
# re-exports it.
WOULD_BLOCK = WouldBlock()


@dataclass(frozen=True, slots=True)
class TasksWait:
    """Parked until every task in ``tasks`` has finished (`async_synchronize_full()`)."""

    tasks: tuple[Task, ...]
    where: str = ""

    def ready(self) -> bool:
        return all(t.state == DONE for t in self.tasks)

    def __str__(self) -> str:
        pending = ", ".join(str(t.id) for t in self.tasks if t.state != DONE)
        return f"{self.where}: waiting for tasks {pending}"


def is_wait(parked: object) -> bool:
    """Does ``parked`` (something a path yielded) block until a condition holds?"""
    return hasattr(parked, "ready") and not isinstance(parked, Point)


class Task:
    """One kernel path in flight: its generator, where it is parked, and its result."""

    __slots__ = ("gen", "hung", "id", "name", "parked", "result", "slices", "state",
                 "unlocked_generation")

    def __init__(self, task_id: int, name: str, gen: Path) -> None:
        self.id = task_id
        self.name = name
        self.gen: Path | None = gen  # None once the task is DONE
        self.state = NEW
        self.parked: object = None
        self.result: Any = None
        self.slices = 0
        self.hung = False
        self.unlocked_generation = -1  # muxed generation when it last dropped the lock

    @property
    def done(self) -> bool:
        return self.state == DONE

    def runnable(self) -> bool:
        """Can a step make progress? (Not finished, and not parked at an unmet wait.)"""
        if self.state == DONE:
            return False
        parked = self.parked
        if parked is None or type(parked) is Point:
            return True  # not started, or at a plain preemption point (most steps)
        return not (is_wait(parked) and not parked.ready())

    def describe(self) -> str:
        """Narration: "task 2 pci_sysfs_init parked at pci_create_attr (...)"."""
        if self.state == DONE:
            return f"task {self.id} {self.name} finished -> {self.result!r}"
        if self.state == NEW:
            return f"task {self.id} {self.name} not started"
        state = "blocked" if not self.runnable() else "parked"
        return f"task {self.id} {self.name} {state} at {self.parked}"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


class Scheduler:
    """The deterministic scheduler: tasks run only when a Program line (or drain) says so.

    ``current`` is the task whose slice is running (lock ownership is per task)."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.tasks: list[Task] = []
        self.current: Task | None = None
        # Bumped by every MUXED release (the resource tree's muxed_wake_hook).
        self.muxed_generation = 0
        # Slices run so far, all tasks together. Kernel paths (PCI enumeration, removal,
        # sysfs file creation, boot) change the state they own only inside a slice, so
        # the whole-state oracles look at that state again only when this moved.
        self.slices_run = 0
        # Tasks that have finished (state DONE, which is final).
        self.finished = 0

    # --- tasks -------------------------------------------------------------------------

    def spawn(self, path: Path, name: str) -> Task:
        """Create a task for ``path``; it does not run until stepped."""
        task = Task(len(self.tasks) + 1, name, path)
        self.tasks.append(task)
        return task

    def task(self, task_id: int) -> Task | None:
        """The task numbered ``task_id`` (1-based), or None."""
        if 1 <= task_id <= len(self.tasks):
            return self.tasks[task_id - 1]
        return None

    def pending(self) -> list[Task]:
        """Unfinished tasks, oldest first."""
        return [t for t in self.tasks if t.state != DONE]

    def step(self, task: Task) -> str:
        """Run one slice of ``task``: resume it until its next yield or its return.

        Returns the task's state afterwards. A finished task or one blocked at an unmet
        wait is not resumed (its state is returned unchanged)."""
        # runnable(), with its commonest case (parked at a plain preemption point) first.
        if task.state == DONE or not (type(task.parked) is Point or task.runnable()):
            if task.state != DONE:
                task.state = BLOCKED
            return task.state
        previous = self.current
        self.current = task
        task.slices += 1
        self.slices_run += 1
        try:
            before = task.parked
            parked = next(task.gen)
            if parked is WOULD_BLOCK:
                # ResourceTree.request_region_task sleeps on muxed_resource_wait. If it
                # last parked between dropping the lock and sleeping (6.1), a release
                # since then bumped the generation before this wait began.
                missed = (before is MUXED_UNLOCKED
                          and task.unlocked_generation != self.muxed_generation)
                parked = MuxedWait(self, self.muxed_generation, "__request_region", missed)
            elif parked is MUXED_UNLOCKED:
                task.unlocked_generation = self.muxed_generation
            task.parked = parked
        except StopIteration as stop:
            task.state = DONE
            self.finished += 1
            task.parked = None
            task.result = stop.value
            # A finished generator can never run again; dropping it leaves a kernel that
            # copy.deepcopy and pickle can copy (neither copies a generator).
            task.gen = None
        finally:
            self.current = previous
        if task.state != DONE:
            # runnable(), with its commonest case first: parked at a plain preemption point.
            task.state = READY if type(task.parked) is Point or task.runnable() else BLOCKED
        return task.state

    def run(self, task: Task, *, until: Any = None) -> str:
        """Step ``task`` until it finishes or blocks (or ``until(task)`` is true after a
        slice). Other tasks do not run. Returns the final state."""
        while True:
            state = self.step(task)
            if state in (DONE, BLOCKED):
                return state
            if until is not None and until(task):
                return state

    def call(self, path: Path, name: str) -> Task:
        """Spawn ``path`` and run it alone until it finishes or blocks.

        This is how a synchronous entry point (a sysfs write, an ioctl) runs a kernel
        path: if it blocks (a lock held by a parked task), it stays pending and the
        caller gets the unfinished task back."""
        task = self.spawn(path, name)
        self.run(task)
        return task

    def refresh(self) -> None:
        """Re-evaluate BLOCKED/READY after other tasks changed shared state."""
        for task in self.tasks:
            if task.state in (READY, BLOCKED):
                # Not DONE: parked at a plain preemption point means runnable.
                task.state = (READY if type(task.parked) is Point or task.runnable()
                              else BLOCKED)

    def drain(self, tasks: Iterable[Task] | None = None) -> list[Task]:
        """Run pending tasks to completion in the fixed end-of-Program order.

        Always the lowest-numbered runnable task gets the next slice (so a task that
        blocks yields to the next-oldest and resumes as soon as it can). When no task
        can run, each still-blocked task is reported once as a HANG event and returned.
        ``tasks`` restricts which tasks may be run (default: all)."""
        allowed = None if tasks is None else {t.id for t in tasks}
        step = self.step
        for _ in range(DRAIN_BUDGET):
            # The first runnable one, without building the candidate lists (or a
            # generator) per slice: a drained boot is some forty slices.
            for first in self.tasks:
                if ((allowed is None or first.id in allowed) and first.state != DONE
                        and (type(first.parked) is Point or first.runnable())):
                    step(first)
                    break
            else:
                break
        else:
            raise AssertionError("scheduler: a kernel path never finishes")
        self.refresh()
        stuck = [t for t in self.tasks
                 if t.state != DONE and (allowed is None or t.id in allowed)]
        for task in stuck:
            self.report_hang(task)
        return stuck

    def report_hang(self, task: Task) -> None:
        """Emit the hung-task report for ``task`` (once per task)."""
        if task.hung:
            return
        task.hung = True
        extra = {}
        if getattr(task.parked, "missed_wakeup", False):
            extra["lost_wakeup"] = True
        self.log.emit(
            HANG,
            f"INFO: task {task.name}:{task.id} blocked forever at {task.parked}",
            task=task.id, name=task.name, where=str(task.parked), **extra,
        )

    # --- hooks -------------------------------------------------------------------------

    def muxed_wake(self) -> None:
        """Models `wake_up(&muxed_resource_wait)` in `__release_region()`,
        kernel/resource.c, v6.1 (ResourceTree.muxed_wake_hook)."""
        self.muxed_generation += 1
        self.refresh()


# --- helpers kernel paths use ------------------------------------------------------------

def mutex_lock(sched: Scheduler, lock: Mutex, where: str = "") -> Path:
    """Models `mutex_lock()`, v6.1: sleep while another task holds ``lock``, then own it.

    The uncontended fast path does not yield: taking a free mutex is not a point where
    the modelled races change anything."""
    assert sched.current is not None, "mutex_lock outside a task: use Scheduler.call"
    while lock.owner is not None:
        yield LockWait(lock, where)
    lock.owner = sched.current


def mutex_unlock(sched: Scheduler, lock: Mutex) -> None:
    """Models `mutex_unlock()`, v6.1. Unlocking a mutex the task does not hold is a
    model bug (lockdep would splat), hence an assert rather than an event."""
    assert lock.owner is sched.current, f"{lock!r} unlocked by task {sched.current}"
    lock.owner = None
    sched.refresh()


def complete(path: Path) -> Any:
    """Run a kernel path with nothing interleaved and no scheduler; return its result.

    Only for paths that take no lock and cannot sleep: a wait that is not satisfied is
    a model bug here. Anything that may lock runs through :meth:`Scheduler.call`."""
    while True:
        try:
            parked = next(path)
        except StopIteration as stop:
            return stop.value
        assert not (is_wait(parked) and not parked.ready()), f"blocked at {parked}"
