"""The deterministic scheduler: slices, waits, locks, drain order and hang reports."""

from __future__ import annotations

import pytest
from iomemfuzz.model.event import HANG, Log
from iomemfuzz.model.ioport import IORESOURCE_MUXED
from iomemfuzz.model.profile import resolve
from iomemfuzz.model.resource_tree import ResourceTree
from iomemfuzz.model.sched import (
    BLOCKED,
    DONE,
    NEW,
    READY,
    WOULD_BLOCK,
    Mutex,
    MuxedWait,
    Point,
    Scheduler,
    TasksWait,
    complete,
    mutex_lock,
    mutex_unlock,
)


def recorder(trace: list[str], name: str, points: int):
    def path():
        for i in range(points):
            trace.append(f"{name}{i}")
            yield Point(f"{name} point {i}")
        trace.append(f"{name}-end")
        return name
    return path()


def test_spawn_does_not_run_and_step_runs_one_slice():
    sched = Scheduler(Log())
    trace: list[str] = []
    task = sched.spawn(recorder(trace, "a", 2), "a")
    assert task.state == NEW and trace == []
    assert sched.step(task) == READY
    assert trace == ["a0"] and str(task.parked) == "a point 0"
    assert sched.step(task) == READY
    assert sched.step(task) == DONE
    assert task.result == "a" and trace == ["a0", "a1", "a-end"]
    # Stepping a finished task changes nothing.
    assert sched.step(task) == DONE


def test_plain_strings_are_preemption_points():
    sched = Scheduler(Log())

    def path():
        yield "mmap:populated"
        return 7

    task = sched.spawn(path(), "mmap")
    assert sched.step(task) == READY
    assert task.describe() == "task 1 mmap parked at mmap:populated"
    assert sched.step(task) == DONE and task.result == 7


def test_drain_runs_lowest_id_to_completion_first():
    sched = Scheduler(Log())
    trace: list[str] = []
    sched.spawn(recorder(trace, "a", 2), "a")
    b = sched.spawn(recorder(trace, "b", 2), "b")
    sched.step(b)  # b ran first once, by the Program's choice
    assert sched.drain() == []
    assert trace == ["b0", "a0", "a1", "a-end", "b1", "b-end"]


def test_lock_blocks_until_released_and_drain_hands_over():
    log = Log()
    sched = Scheduler(log)
    lock = Mutex("pci_rescan_remove_lock")
    trace: list[str] = []

    def holder():
        yield from mutex_lock(sched, lock, "holder")
        trace.append("holder locked")
        yield Point("holder: inside")
        mutex_unlock(sched, lock)
        trace.append("holder unlocked")

    def waiter():
        yield from mutex_lock(sched, lock, "waiter")
        trace.append("waiter locked")
        mutex_unlock(sched, lock)

    h = sched.spawn(holder(), "holder")
    w = sched.spawn(waiter(), "waiter")
    sched.step(h)
    assert lock.owner is h
    assert sched.step(w) == BLOCKED
    assert "mutex_lock(pci_rescan_remove_lock) held by task 1" in w.describe()
    # A blocked task does not run when stepped.
    assert sched.step(w) == BLOCKED and trace == ["holder locked"]
    assert sched.drain() == []
    assert trace == ["holder locked", "holder unlocked", "waiter locked"]
    assert not [e for e in log.events if e.kind == HANG]


def test_drain_reports_hang_once_per_stuck_task():
    log = Log()
    sched = Scheduler(log)
    lock = Mutex("device_lock(0000:00:02.0)")

    def leaks_lock():
        yield from mutex_lock(sched, lock)
        return 0  # returns holding the lock: nobody can ever take it

    def waiter():
        yield from mutex_lock(sched, lock, "device_attach")

    sched.call(leaks_lock(), "leaky")
    w = sched.spawn(waiter(), "waiter")
    stuck = sched.drain()
    assert stuck == [w]
    hangs = [e for e in log.events if e.kind == HANG]
    assert len(hangs) == 1
    assert hangs[0].text.startswith("INFO: task waiter:2 blocked forever at device_attach")
    sched.drain()
    assert len([e for e in log.events if e.kind == HANG]) == 1


def test_self_deadlock_is_a_hang():
    sched = Scheduler(Log())
    lock = Mutex("pci_proc_lock")

    def twice():
        yield from mutex_lock(sched, lock)
        yield from mutex_lock(sched, lock)

    task = sched.call(twice(), "twice")
    assert task.state == BLOCKED
    assert sched.drain() == [task]


def test_would_block_parks_until_a_muxed_release():
    """D15: a second request_muxed_region sleeps until the first is released."""
    log = Log()
    sched = Scheduler(log)
    tree = ResourceTree(resolve("v6.1-deb"), log)
    tree.muxed_wake_hook = sched.muxed_wake
    first = tree.request_muxed_region(0x2E, 2, "a")
    assert first is not None and first is not WOULD_BLOCK
    task = sched.spawn(tree.request_region_task(tree.ioport_resource, 0x2E, 2, "b",
                                                IORESOURCE_MUXED), "superio b")
    assert sched.step(task) == BLOCKED
    assert isinstance(task.parked, MuxedWait)
    assert "sleeping on muxed_resource_wait" in task.describe()
    assert sched.step(task) == BLOCKED  # no release yet: stepping does nothing
    tree.release_region(0x2E, 2)
    assert sched.step(task) == DONE
    assert task.result is not None and task.result.name == "b"


def test_muxed_holder_never_releasing_is_a_hang():
    """B28: the waiter sleeps uninterruptibly forever."""
    log = Log()
    sched = Scheduler(log)
    tree = ResourceTree(resolve("v6.1-deb"), log)
    tree.muxed_wake_hook = sched.muxed_wake
    tree.request_muxed_region(0x2E, 2, "a")
    task = sched.spawn(tree.request_region_task(tree.ioport_resource, 0x2E, 2, "b",
                                                IORESOURCE_MUXED), "superio b")
    assert sched.drain() == [task]
    assert [e.get("name") for e in log.events if e.kind == HANG] == ["superio b"]


def test_muxed_waiter_that_is_never_woken_hangs():
    log = Log()
    sched = Scheduler(log)

    def sleeper():
        yield MuxedWait(sched, sched.muxed_generation, "__request_region(0x2e, 0x2)")

    sched.spawn(sleeper(), "superio")
    assert len(sched.drain()) == 1
    (hang,) = [e for e in log.events if e.kind == HANG]
    assert "muxed_resource_wait" in hang.text


def test_tasks_wait_until_all_finished():
    sched = Scheduler(Log())
    trace: list[str] = []
    child = sched.spawn(recorder(trace, "c", 1), "child")

    def parent():
        yield TasksWait((child,), "async_synchronize_full")
        trace.append("parent done")

    p = sched.spawn(parent(), "parent")
    assert sched.step(p) == BLOCKED
    sched.run(child)
    sched.refresh()
    assert p.runnable()
    assert sched.run(p) == DONE
    assert trace == ["c0", "c-end", "parent done"]


def test_run_until_stops_after_condition():
    sched = Scheduler(Log())
    trace: list[str] = []
    task = sched.spawn(recorder(trace, "a", 5), "a")
    sched.run(task, until=lambda t: len(trace) == 3)
    assert trace == ["a0", "a1", "a2"] and task.state == READY


def test_complete_refuses_to_block():
    sched = Scheduler(Log())
    lock = Mutex("x")

    def blocked():
        yield MuxedWait(sched, sched.muxed_generation)

    with pytest.raises(AssertionError):
        complete(blocked())
    # mutex_lock needs a task to own the lock.
    with pytest.raises(AssertionError):
        complete(mutex_lock(sched, lock))


def test_task_lookup_and_pending():
    sched = Scheduler(Log())
    a = sched.spawn(recorder([], "a", 0), "a")
    b = sched.spawn(recorder([], "b", 1), "b")
    assert sched.task(1) is a and sched.task(2) is b and sched.task(3) is None
    sched.run(a)
    assert sched.pending() == [b]
    assert "finished" in a.describe() and "not started" in b.describe()
