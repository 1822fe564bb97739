"""iomemfuzz explore (fuzz/explore.py): the enumeration is what it says, and state hashing
loses no finding, checked against a brute force on a tiny domain with a planted bug."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from iomemfuzz.fuzz import explore as ex
from iomemfuzz.fuzz.corpus import finding_path
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.model.profile import resolve

# A planted bug, only here: a v6.1-deb kernel whose claims never revoke /dev/mem
# mappings. A mapping of a page a driver then claims survives the claim.
PLANTED = dataclasses.replace(resolve("v6.1-deb"), name="test-planted-no-revoke",
                              revoke_devmem=False)
TINY = ex.Domain(ops=("open_devmem", "mmap", "__request_region", "touch"), recent=0,
                 sizes=(), addresses=(0xFE000000,), vary=False)
DEPTH = 4  # open /dev/mem, map the page, claim it, touch the mapping


def _brute(prefix: tuple, depth: int) -> tuple[int, set[str], set[str]]:
    """Every Program of the domain up to ``depth`` operations, recursively, no hashing:
    (Programs, signatures, state keys of the Programs shorter than depth)."""
    if len(prefix) == depth:
        return 0, set(), set()
    programs, sigs, keys = 0, set(), set()
    base = ex.prefix_execution(prefix, PLANTED, Program())
    for o in list(ex.candidates(base, prefix, TINY)):
        ops = (*prefix, o)
        outcome = ex.run_program(ops, PLANTED, Program(), TINY)
        programs += 1
        sigs |= set(outcome.signatures)
        if len(ops) < depth:
            keys.add(outcome.key)
        more = _brute(ops, depth)
        programs += more[0]
        sigs |= more[1]
        keys |= more[2]
    return programs, sigs, keys


def test_enumeration_and_hashing_agree_with_brute_force():
    programs, sigs, keys = _brute((), DEPTH)
    flat = ex.explore(PLANTED, DEPTH, TINY, out=None, hashing=False)
    assert flat.finished and flat.programs == programs
    hashed = ex.explore(PLANTED, DEPTH, TINY, out=None)
    assert hashed.finished
    assert set(hashed.findings) == sigs == set(flat.findings)
    assert any(s.startswith("mapping-survival/") for s in sigs)  # the planted bug
    # Distinct states: the empty Program's and those of every shorter Program.
    empty = ex.run_program((), PLANTED, Program(), TINY).key
    assert hashed.states == len(keys | {empty})
    assert hashed.programs < programs  # hashing saved runs


def test_domain_offers_consumers_only_with_producers():
    base = ex.prefix_execution((), PLANTED, Program())
    first = {type(o).NAME for o in ex.candidates(base, (), TINY)}
    assert first == {"open_devmem", "__request_region"}  # mmap and touch need handles
    ops = ex.prefix_execution((), PLANTED, Program())
    ops.step(next(o for o in ex.candidates(base, (), TINY) if o.NAME == "open_devmem"))


def test_finding_files_and_statement(tmp_path):
    report = ex.explore(PLANTED, DEPTH, TINY, out=tmp_path)
    text = report.statement()
    assert f"every Program of <= {DEPTH} operations" in text and "no other finding" in text
    assert any(s.startswith("mapping-survival/") for s in report.files)
    for sig, path in report.files.items():
        written = Path(path).read_text()
        assert Path(path) == finding_path(tmp_path, PLANTED.name, sig)
        assert f"# expect: finding {sig}" in written
        # It replays (read leniently: the planted profile is no shipped one).
        assert sig in run(parse_program(written, lenient=True), PLANTED).signatures


def test_checkpoint_resumes_where_it_stopped(tmp_path):
    cp = tmp_path / "explore.json"
    whole = ex.explore(PLANTED, DEPTH, TINY, out=None)
    first = ex.explore(PLANTED, DEPTH, TINY, out=None, checkpoint=cp, levels=2)
    assert not first.finished and len(first.levels) == 2
    resumed = ex.explore(PLANTED, DEPTH, TINY, out=None, checkpoint=cp, resume=True)
    assert resumed.finished
    assert (resumed.programs, resumed.states, set(resumed.findings)) == \
        (whole.programs, whole.states, set(whole.findings))


def test_the_bar_anchor_is_a_bar_no_driver_holds():
    """00:01.0's BAR is bochs-drm's (busy): a claim there fails, so the anchor is the
    next BAR, where a claim and the device's removal meet (BD9)."""
    from iomemfuzz.fuzz.snapshot import fresh_kernel
    from iomemfuzz.model.profile import resolve

    kernel = fresh_kernel(resolve("v6.1-deb"), None, booted=True)
    assert ex.anchors(kernel, 4) == [0xA0000, 0xC1000000, 0xFEC01000, 0x1000]
    report = ex.explore("v6.1-deb", 2, ex.Domain(ops=("request_mem_region", "remove")))
    assert "busy-consistency/claim-lost/pci_stop_and_remove_bus_device" in report.findings
