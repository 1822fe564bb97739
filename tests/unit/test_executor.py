"""The executor: fresh kernel per run, outcomes, events, determinism, closure under
deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.executor import Execution, run
from iomemfuzz.fuzz.ops.tree import ReleaseResource, RequestRegion
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program

ROOT = Path(__file__).resolve().parents[2]
SEED_FILES = sorted(program_files([ROOT / "corpus" / "seeds"]))

# A free MMIO gap of the default machine (between the PCI window and the IOAPIC).
GAP = 0xFE000000


def _fingerprint(trace):
    return [(s.index, s.op, s.outcome, s.events, s.violations) for s in trace.steps]


def test_runs_are_deterministic_and_independent():
    program = parse_program(
        f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"
        f"__release_region(start={GAP:#x}, n=0x80)\n"
        f"r1 = __request_region(start={GAP:#x}, n=0x100)\n")
    first = run(program)
    second = run(program)
    assert _fingerprint(first) == _fingerprint(second)
    # A fresh kernel per run: the first run's leaked claim does not leak into the next.
    assert first.steps[0].outcome.label == "ok"
    assert second.steps[0].outcome.label == "ok"
    assert first.steps[2].outcome.label == "EBUSY"


def test_outcomes_and_events_are_recorded_per_step():
    ex = Execution.start("v6.1-deb")
    step = ex.step(RequestRegion(start=GAP, n=0x100))
    assert step.outcome.label == "ok" and step.events == ()
    step = ex.step(RequestRegion(start=GAP + 0x80, n=0x100))
    assert step.outcome.label == "EBUSY"
    trace = ex.finish()
    assert trace.signatures == ()


WRONG_SIZE = (f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"
              f"__release_region(start={GAP:#x}, n=0x80)\n")


def test_wrong_size_release_is_a_finding_where_callers_may_misuse_the_api():
    trace = run(parse_program(WRONG_SIZE), "v6.1-deb-misuse")
    assert trace.signatures == (
        "busy-consistency/release-without-claim/__release_region/wrong-size",
        "busy-consistency/busy-without-claim/__release_region/wrong-size-release")
    assert "Trying to free nonexistent resource" in trace.steps[1].events[0].text
    assert trace.first.cls == "driver-misuse"


def test_a_line_that_breaks_the_caller_contract_does_not_run_by_default():
    trace = run(parse_program(WRONG_SIZE), "v6.1-deb")
    assert [s.outcome.label for s in trace.steps[:2]] == ["ok", "illegal"]
    assert trace.signatures == () and trace.steps[1].events == ()


# A busy struct inserted so that it grows over a driver's claim (insert_resource_expand_to_fit
# is e820's boot-time call) hides the claim from __release_region: the driver's own release
# then warned "Trying to free nonexistent resource" and reported B16's wrong-size signature
# in the default profile. The contract refuses the insert instead.
GROWN_OVER_CLAIM = """\
r0 = request_mem_region(start=0xb0000)
r1 = insert_resource_expand_to_fit(start=0x8000, end=0xb0000, flags=MEM|BUSY)
release_mem_region(start=0xb0000)
"""


def test_a_busy_insert_that_would_grow_over_a_claim_is_illegal_by_default():
    trace = run(parse_program(GROWN_OVER_CLAIM), "v6.1-deb")
    assert [s.outcome.label for s in trace.steps[:3]] == ["ok", "illegal", "ok"]
    assert trace.signatures == ()
    # On the misuse profile it runs, and what follows is the caller's fault.
    misuse = run(parse_program(GROWN_OVER_CLAIM), "v6.1-deb-misuse")
    assert misuse.steps[1].outcome.label == "ok"
    assert misuse.signatures and all(v.cls == "driver-misuse" for v in misuse.violations)


# Two more routes a default job took to B16's and claim-lost's signatures: a busy struct
# inserted inside a driver's claim is dropped with it when the driver lets go; one that
# expand_to_fit grows over a bus window takes in the driver claims below the window.
INSIDE_A_CLAIM = """\
r0 = insert_resource(start=0x380000001000, end=0x380000003000, flags=MEM|BUSY)
r1 = remove()
"""
GROWN_OVER_A_WINDOW = """\
r0 = insert_resource_expand_to_fit(start=0x3807fffff000, end=0x380800000000, flags=MEM|BUSY)
r1 = hotremove()
"""


@pytest.mark.parametrize("text", [INSIDE_A_CLAIM, GROWN_OVER_A_WINDOW])
def test_a_busy_insert_that_would_meet_a_claim_is_illegal_by_default(text):
    trace = run(parse_program(text), "v6.1-deb")
    assert trace.steps[0].outcome.label == "illegal"
    assert trace.signatures == ()
    assert run(parse_program(text), "v6.1-deb-misuse").signatures  # the misuse route


def test_dangling_handle_returns_ebadf():
    ex = Execution.start()
    assert ex.step(ReleaseResource(res=None)).outcome.label == "EBADF"
    assert ex.step(ReleaseResource(res=5)).outcome.label == "EBADF"


@pytest.mark.parametrize("path", SEED_FILES, ids=[p.name for p in SEED_FILES])
def test_deleting_any_line_of_a_seed_still_parses_and_runs(path):
    program = read_program(str(path))
    for i in range(len(program.lines)):
        smaller = program.delete(i)
        trace = run(smaller)
        assert len(trace.steps) == len(smaller.lines) + 1


def test_hot_unplug_split_keeps_both_pieces_owned():
    # Splitting a busy node leaves a high piece the kernel allocated itself; it still
    # belongs to the original holder (regression: it was reported as held by nobody).
    trace = run(parse_program(
        "# machine: minimal\n\n"
        "release_mem_region_adjustable(start=0x2000000, size=0x1000)\n"))
    assert trace.signatures == ()
    trace = run(parse_program(
        f"r0 = __request_region(start={GAP:#x}, n=0x3000)\n"
        f"release_mem_region_adjustable(start={GAP + 0x1000:#x}, size=0x1000)\n"))
    assert trace.signatures == ()


def test_sigsegv_is_an_expectation():
    p = parse_program("touch()  # SIGSEGV\n")
    assert p.lines[0].expect == "SIGSEGV"
