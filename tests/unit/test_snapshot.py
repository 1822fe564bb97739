"""Kernel snapshots (fuzz/snapshot.py): a copy of a template behaves exactly like a kernel
built from scratch, copies share nothing a run can change, and what cannot be copied is
refused rather than shared."""

from __future__ import annotations

import collections
import gc
import random
from pathlib import Path

import pytest
from iomemfuzz.fuzz import decode, snapshot
from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.executor import Execution, needs_boot
from iomemfuzz.fuzz.ledger import Ledger, ledger, watched_kernel
from iomemfuzz.fuzz.oracles import ORACLES
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.snapshot import SnapshotError, compile_kernel, fresh_kernel
from iomemfuzz.model.ioport import Resource
from iomemfuzz.model.kernel import Kernel
from iomemfuzz.model.machine import DEFAULT_MACHINE, MACHINES
from iomemfuzz.model.machine_file import load_machine
from iomemfuzz.model.profile import PROFILES, resolve

ROOT = Path(__file__).resolve().parents[2]
GAP = 0xFE000000  # a free MMIO gap of the default machine


def _observe(program: Program, kernel: Kernel) -> list[object]:
    """Everything a run shows: per step the operation, outcome, events and violations,
    then every state section ``iomemfuzz show`` prints."""
    ex = Execution(kernel.profile, kernel, ORACLES, True)
    for op in program.ops:
        ex.step(op)
    trace = ex.finish()
    steps = [(s.index, s.op, s.outcome, s.events, s.violations) for s in trace.steps]
    return [steps, trace.accepted, kernel.describe()]


def _scratch(program: Program, profile) -> Kernel:
    machine = load_machine(program.header("machine")) if program.header("machine") else None
    return watched_kernel(profile, machine, needs_boot(program.ops))


def _copy(program: Program, profile) -> Kernel:
    machine = load_machine(program.header("machine")) if program.header("machine") else None
    return fresh_kernel(profile, machine, booted=needs_boot(program.ops))


@pytest.mark.slow  # every profile on every machine: 150 templates
@pytest.mark.parametrize("machine", sorted(MACHINES))
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_and_machine_has_a_checked_template(profile, machine):
    # compile_kernel compares its first copy with the template object by object; a model
    # change that keeps state a copy cannot reproduce fails here, not in a fuzz job.
    for booted in (True, False):
        build = compile_kernel(PROFILES[profile], MACHINES[machine], booted)
        copy = build()
        assert copy.booted is booted
        assert copy.profile is PROFILES[profile] and copy.machine is MACHINES[machine]


def test_corpus_and_decoded_programs_run_alike_on_copies_and_scratch_kernels():
    items = [(read_program(str(p)), None) for p in sorted(program_files([ROOT / "corpus"]))]
    rng = random.Random(20261126)
    items += [(decode.decode(rng.randbytes(rng.randrange(0, 1200))), name)
              for name in ("v6.1-deb", "v5.12", "v6.1-deb-claim-fails") for _ in range(40)]
    booted = 0
    for program, name in items:
        profile = resolve(name or program.profile)
        booted += needs_boot(program.ops)
        assert _observe(program, _copy(program, profile)) == \
            _observe(program, _scratch(program, profile)), program
    assert booted > 50  # both kinds of start are exercised


@pytest.mark.slow  # every profile on every machine
def test_a_run_leaves_nothing_behind_for_the_next_on_any_profile_or_machine():
    # As a fuzzer uses copies: one process, run after run. Program B must observe the
    # same after any Program A as on a kernel built from scratch.
    rng = random.Random(4)
    texts = [decode.decode(rng.randbytes(rng.randrange(40, 900))) for _ in range(24)]
    for i, (profile, machine) in enumerate(
            (p, m) for p in sorted(PROFILES) for m in sorted(MACHINES)):
        first = texts[i % len(texts)].with_headers(machine=machine)
        second = texts[(i * 7 + 3) % len(texts)].with_headers(machine=machine)
        prof = PROFILES[profile]
        _observe(first, _copy(first, prof))
        assert _observe(second, _copy(second, prof)) == \
            _observe(second, _scratch(second, prof)), (profile, machine)


def test_a_run_on_one_copy_changes_no_other_copy():
    program = parse_program(
        f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"
        'r1 = hotremove(dev="0000:00:03.0")\n'
        "r2 = process()\n")
    first = fresh_kernel()
    _observe(program, first)
    second = fresh_kernel()
    assert second.describe() == watched_kernel().describe()
    assert second.describe() != first.describe()
    assert (len(ledger(second).claims) == len(ledger(watched_kernel()).claims)
            < len(ledger(first).claims))
    # Built state is never shared; what existed before the build is.
    assert second.resources.iomem_resource is not first.resources.iomem_resource
    assert second.log.events is not first.log.events
    assert second.profile is first.profile and second.machine is first.machine


def test_a_copy_rebinds_hooks_to_its_own_objects():
    kernel = fresh_kernel()
    assert kernel.resources.revoke_hook.__self__ is kernel.resources
    assert kernel.resources.devmem_is_allowed.__self__ is kernel.devmem
    assert kernel.resources.mm is kernel.mm
    assert kernel.sysfs.drain_hook.__self__ is kernel.mm
    assert kernel.resources.muxed_wake_hook.__self__ is kernel.sched


def _existing() -> tuple[list[object], set[int]]:
    """What exists now (held, so the ids stay unique) and its ids."""
    before = gc.get_objects()
    return before, {id(o) for o in before}


def test_a_suspended_kernel_path_or_a_closure_is_refused():
    _held, existing = _existing()
    kernel = watched_kernel(booted=False)
    task = kernel.boot.start()
    kernel.sched.step(task)  # parked before the first initcall: a live generator
    with pytest.raises(SnapshotError, match="suspended kernel path"):
        snapshot.copier(kernel, existing)
    kernel = watched_kernel()
    ledger(kernel).memo["callback"] = lambda: kernel
    with pytest.raises(SnapshotError, match="function or class made while building"):
        snapshot.copier(kernel, existing)
    kernel = watched_kernel()
    ledger(kernel).memo["ordered"] = collections.OrderedDict(a=kernel.resources)
    with pytest.raises(SnapshotError, match=r"cannot copy a collections\.OrderedDict"):
        snapshot.copier(kernel, existing)


def _copy_and_counterparts(template, existing):
    compiler = snapshot._Compiler(existing)
    copy, names = compiler.compile(template)(True)
    return copy, {id(obj): names[name] for name, obj in compiler.copied.items()}


def test_the_check_catches_a_copy_that_differs_or_shares():
    _held, existing = _existing()
    template = watched_kernel()
    copy, counterparts = _copy_and_counterparts(template, existing)
    snapshot._check_copy(template, copy, counterparts)
    copy.resources.iomem_resource.child.name = "not what boot made"
    with pytest.raises(SnapshotError,
                       match=r"differs at kernel\..*: 'not what boot made' instead of"):
        snapshot._check_copy(template, copy, counterparts)
    copy, counterparts = _copy_and_counterparts(template, existing)
    ledger(copy).claims = ledger(template).claims
    with pytest.raises(SnapshotError, match="shares an object the build created"):
        snapshot._check_copy(template, copy, counterparts)
    # A set member is checked as a member, not only through some other path.
    ledger(template).memo["set"] = {Resource(0x10, 0x1F, "only in a set")}
    copy, counterparts = _copy_and_counterparts(template, existing)
    snapshot._check_copy(template, copy, counterparts)
    next(iter(ledger(copy).memo["set"])).end = 0x2F
    with pytest.raises(SnapshotError, match=r"differs at kernel.*\{0\}\.end"):
        snapshot._check_copy(template, copy, counterparts)


def test_a_bound_builtin_method_follows_its_object_into_the_copy():
    _held, existing = _existing()
    template = watched_kernel()
    memo = ledger(template).memo
    memo["log"] = []
    memo["hook"] = memo["log"].append
    copy = snapshot.copier(template, existing)()
    ledger(copy).memo["hook"]("only the copy's list")
    assert ledger(copy).memo["log"] == ["only the copy's list"]
    assert memo["log"] == []


def test_module_tables_are_shared_as_a_scratch_build_shares_them(monkeypatch):
    from iomemfuzz.model import errno

    class KernelReadingATable(Kernel):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            # A dict of plain values: gc does not track it.
            self.observer.memo["names"] = errno.NAMES

    def build(profile=None, machine=None, booted=True):
        return KernelReadingATable(profile, machine, booted=booted, observer=Ledger())

    monkeypatch.setattr(snapshot, "watched_kernel", build)
    copy = compile_kernel(PROFILES["v6.1-deb"], DEFAULT_MACHINE, True)()
    assert ledger(copy).memo["names"] is errno.NAMES
    assert copy.resources is not build().resources


def test_a_kernel_that_cannot_be_copied_is_built_from_scratch(monkeypatch):
    def refuse(*_args):
        raise SnapshotError("test")

    monkeypatch.setattr(snapshot, "compile_kernel", refuse)
    monkeypatch.setattr(snapshot, "_BY_VALUE", {})
    monkeypatch.setattr(snapshot, "_BY_ID", {})
    with pytest.warns(RuntimeWarning, match="cannot be copied, so every run builds it"):
        kernel = fresh_kernel(PROFILES["v5.12"], DEFAULT_MACHINE)
    assert kernel.profile is PROFILES["v5.12"]
    assert kernel.describe() == watched_kernel(PROFILES["v5.12"]).describe()


def test_copies_agree_with_copy_deepcopy_of_the_template():
    # copy.deepcopy is the generic reference: a finished task drops its generator
    # (model/sched.py), so a booted kernel holds nothing deepcopy refuses. What existed
    # before the build (profile, machine) is shared by both, as the snapshot shares it.
    import copy

    templates: dict[tuple[object, ...], Kernel] = {}
    for path in sorted(program_files([ROOT / "corpus"])):
        program = read_program(str(path))
        profile = resolve(program.profile)
        template = templates.setdefault(
            (profile.name, program.header("machine"), needs_boot(program.ops)),
            _scratch(program, profile))
        reference = copy.deepcopy(template, {id(profile): profile,
                                             id(template.machine): template.machine})
        assert _observe(program, reference) == \
            _observe(program, _copy(program, profile)), path
