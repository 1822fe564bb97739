"""The state-aware generator (fuzz/generate.py, fuzz/values.py): deterministic per seed,
handles only from their producers, values from the state, and it finds what the
catalogue says it should from nothing (counted in Programs, never timed)."""

from __future__ import annotations

import itertools
import random

import pytest
from iomemfuzz.fuzz import generate, values
from iomemfuzz.fuzz.executor import Execution
from iomemfuzz.fuzz.generate import ChoiceTable, Generator
from iomemfuzz.fuzz.ops import Kind, load_families, ordered_ops
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.snapshot import fresh_kernel
from iomemfuzz.model.profile import resolve

PROFILE = resolve("v6.1-deb")


def _programs(seed: int, n: int, profile=PROFILE) -> list[str]:
    gen = Generator(profile, random.Random(seed))
    return [format_program(gen.program()[0]) for _ in range(n)]


def test_the_same_seed_writes_the_same_programs():
    assert _programs(7, 60) == _programs(7, 60)
    assert _programs(7, 60) != _programs(8, 60)


def test_every_handle_comes_from_a_line_of_one_of_its_producers():
    gen = Generator(PROFILE, random.Random(3))
    checked = 0
    for _ in range(300):
        program, _trace = gen.program()
        made: dict[int, str] = {}
        for line in program.lines:
            op = line.op
            for name, arg in type(op).args():
                if arg.kind is not Kind.HANDLE or getattr(op, name) is None:
                    continue
                producer = made[getattr(op, name)]  # KeyError: a handle nobody made
                if arg.choices:
                    assert producer in arg.choices, (format_program(program), name)
                checked += 1
            if type(op).BINDS:
                made[len(made)] = type(op).NAME
    assert checked > 300


def test_a_claim_chosen_for_a_mapping_lies_in_what_it_maps():
    program = parse_program("r0 = open_devmem()\nr1 = mmap(file=r0, offset=0xa0000)\n")
    ex = Execution(PROFILE, fresh_kernel(PROFILE, None, booted=True))
    for op in program.ops:
        ex.step(op)
    state = values.State.of(ex, program.ops)
    vma = state.handles[-1][1]
    claim = load_families()["request_mem_region"]
    rng = random.Random(1)
    starts = [values.fill(claim, state, rng, focus=vma).start for _ in range(200)]
    inside = [s for s in starts if 0xa0000 <= s < 0xa1000]
    assert len(inside) > 150  # P_FOCUS of them, and some by chance


def test_a_release_takes_a_held_claims_start_and_often_its_size():
    program = parse_program("r0 = request_mem_region(start=0xfe000000, n=0x100)\n")
    ex = Execution(PROFILE, fresh_kernel(PROFILE, None, booted=True))
    ex.step(program.ops[0])
    state = values.State.of(ex, program.ops)
    assert state.held[0] == (0xfe000000, 0x100)  # the latest first, then boot drivers
    release = load_families()["release_mem_region"]
    rng = random.Random(2)
    drawn = [values.fill(release, state, rng) for _ in range(200)]
    same = [o for o in drawn if (o.start, o.n) == (0xfe000000, 0x100)]
    other = [o for o in drawn if o.start == 0xfe000000 and o.n != 0x100]
    assert same and other


def test_consumers_are_listed_by_producer_and_handle_type():
    table = ChoiceTable(ordered_ops())
    assert {c.NAME for c in table.consumers["mmap"]} >= {"touch", "munmap"}
    assert "mmap" in {c.NAME for c in table.consumers["open_devmem"]}
    assert {c.NAME for c in table.claimers} >= {"request_mem_region", "__request_region"}
    # A claim of a busy region is given back by address: its releases consume it.
    assert "release_mem_region" in {c.NAME for c in table.consumers["request_mem_region"]}
    assert "release_mem_region" not in {c.NAME for c in table.consumers["Resource"]}


def test_a_release_chosen_for_a_claims_handle_gives_back_that_claim():
    state = _state("r0 = request_mem_region(start=0xfe000000, n=0x100)\n"
                   "r1 = request_mem_region(start=0xfe001000, n=0x800)\n")
    first = state.handles[0][1]
    release = load_families()["release_mem_region"]
    rng = random.Random(3)
    starts = [values.fill(release, state, rng, focus=first).start for _ in range(200)]
    assert starts.count(0xFE000000) > 150  # P_FOCUS of them, and some by the held draw


def _finds(profile: str, prefix: str, seed: int, budget: int) -> int | None:
    gen = Generator(resolve(profile), random.Random(seed))
    for n in range(1, budget + 1):
        _program, trace = gen.program()
        if any(s.startswith(prefix) for s in trace.signatures):
            return n
    return None


B16 = "busy-consistency/release-without-claim/__release_region/wrong-size"
B5 = "mapping-survival/reaches-claimed/revoke_iomem/low-mib"
B7 = "mapping-survival/collateral-revocation/revoke_iomem/page-granular"


def test_finds_b16_from_nothing():
    found = [_finds("v6.1-deb-misuse", B16, seed, 3000) for seed in (1, 2, 3)]
    assert all(found), found


@pytest.mark.slow
def test_finds_b5_and_b7_from_nothing():
    """Four and three lines that must share addresses: a low-MiB mapping, a claim of
    it, a touch; a mapping, a claim of part of its page, a touch of the rest."""
    # Time to find is heavy-tailed (docs/BENCHMARKS.md): one seed of three must get there
    # (when written: B5 after 10,043 and 5,610 Programs with seeds 2 and 3, not within
    # 15,000 with seed 1; B7 after 2,399, 510, 786).
    assert any(_finds("v6.1-deb", B5, seed, 15000) for seed in (1, 2, 3))
    assert any(_finds("v6.1-deb-byte-exact", B7, seed, 6000) for seed in (1, 2, 3))


def test_a_seed_that_only_names_a_machine_puts_fresh_programs_on_it():
    """A job from an empty corpus on another machine seeds the engine with an empty
    Program naming it (what bench_engines does); the engine used to drop it and run
    everything on the default machine."""
    gen = Generator(PROFILE, random.Random(1))
    gen.seed([parse_program("# machine: qemu-q35-bare\n")])
    machines = {gen.program()[0].header("machine") for _ in range(40)}
    assert machines == {"qemu-q35-bare"}


def _state(text: str, profile=PROFILE) -> values.State:
    program = parse_program(text)
    ex = Execution(profile, fresh_kernel(profile, None, booted=True))
    for op in program.ops:
        ex.step(op)
    return values.State.of(ex, program.ops)


def test_a_drivers_id_table_often_names_a_function_present():
    """B13 needs a driver the model does not know whose ids match the hot-added card;
    a fixed list of QEMU's ids rarely does."""
    state = _state('r0 = hotadd(dev="0000:00:03.0", ids="abcd:0123")\n')
    assert "abcd:0123" in state.ids
    rng = random.Random(4)
    ops = load_families()
    tables = [values.fill(ops["module_load"], state, rng).ids for _ in range(200)]
    new_ids = [values.fill(ops["new_id"], state, rng).id for _ in range(200)]
    present = set(state.ids)
    assert sum(t in present for t in tables) > 70  # P_IDS of them, and some by chance
    assert sum(i.replace(" ", ":") in present for i in new_ids) > 70
    assert "abcd:0123" in tables and "abcd 0123" in new_ids


def test_a_step_stops_where_tasks_of_its_producer_were_seen_parked():
    state = _state("r0 = open_devmem()\nr1 = spawn_mmap(file=r0)\n")
    where = "mmap_region: PTEs populated, VMA not yet linked into i_mmap"
    state.points = {"spawn_mmap": [where]}
    rng = random.Random(5)
    untils = [values.fill(load_families()["step"], state, rng).until for _ in range(200)]
    assert untils.count(where) > 80  # P_SEEN_POINT of them


def _learned(seed: int) -> list[str]:
    gen = Generator(PROFILE, random.Random(seed))
    for _ in range(3000):
        gen.program()
        if "spawn_mmap" in gen.points:
            break
    return gen.points.get("spawn_mmap", [])


def test_the_generator_learns_where_tasks_park():
    # A parked mmap task is a rare state (within 3,000 Programs for 5 of seeds 1-6 when
    # written): one of three seeds must show it, at the point BD6 needs.
    learned = next((p for p in map(_learned, (1, 2, 3)) if p), [])
    assert any("mmap_region" in p for p in learned), learned


def test_a_release_of_a_held_port_claim_goes_to_the_port_tree():
    state = _state('r0 = request_muxed_region(name="a")\n')
    assert (0x2E, 2) in state.held_io
    rng = random.Random(7)
    release = load_families()["__release_region"]
    drawn = [values.fill(release, state, rng) for _ in range(300)]
    held = [o for o in drawn if o.start == 0x2E]
    assert held and all(o.parent == "ioport" for o in held)


def test_a_touch_of_a_small_bar_lands_just_past_its_end():
    state = _state('r0 = hotadd(dev="0000:00:03.0", bars="mem:0x100")\n'
                   'r1 = open_resource(dev="0000:00:03.0")\nr2 = mmap(file=r1)\n')
    rng = random.Random(8)
    offsets = [values.fill(load_families()["touch"], state, rng).offset for _ in range(300)]
    assert offsets.count(0x100) > 20


def test_an_async_hot_add_is_often_followed_by_its_host_probe():
    gen = Generator(PROFILE, random.Random(9))
    follows = total = 0
    for _ in range(3000):
        ops = [line.op for line in gen.program()[0].lines]
        if any(type(o).CONTROLS_BOOT for o in ops):
            continue  # cards cold-plugged before boot_to are followed by the boot
        for a, b in itertools.pairwise(ops):
            if type(a).NAME == "hotadd" and a.host == "async":
                total += 1
                follows += type(b).NAME == "host_probe"
    assert total > 20 and follows > total // 3, (follows, total)


def test_walks_of_a_cyclic_tree_end():
    """A misuse Program can link a node into its own sibling list (B29); the generator
    once hung in the features' region walk of such a tree. Each walk the generator and
    the oracles run stops at a node met twice."""
    from iomemfuzz.fuzz import contract, features
    from iomemfuzz.model.ioport import IORESOURCE_MEM, Resource
    from iomemfuzz.model.kernel import Kernel

    kernel = Kernel(PROFILE)
    root = kernel.roots[0]
    loop = Resource(0xFE000000, 0xFE000FFF, "loop", IORESOURCE_MEM, 0)
    stray = Resource(0xFE001000, 0xFE001FFF, "stray", IORESOURCE_MEM, 0)
    loop.parent, loop.sibling, loop.child = root, loop, loop
    stray.parent = root
    saved = root.child
    root.child = loop
    try:
        assert kernel.in_tree(stray) is False
        assert features._region(root, 0xFE000010) == "other"
        assert len(contract.descendants(root)) == 1  # the contract's walk
    finally:
        root.child = saved


def test_a_claim_can_meet_an_mmap_in_progress():
    """BD6: a task parked inside mmap_region has filled the PTEs but linked nothing, and
    no handle names that mapping yet; its page is among the addresses a claim takes."""
    state = _state("r0 = open_devmem()\nr1 = spawn_mmap(file=r0, offset=0xfe000000)\n"
                   "step(task=r1)\n")
    assert state.mapped[:2] == [0xFE000000, 0xFE000010]


def test_a_touch_lands_at_the_edges_of_a_held_claim_in_the_mapping():
    state = _state("r0 = open_devmem()\nr1 = mmap(file=r0, offset=0xa0000, length=0x4000)\n"
                   "r2 = request_mem_region(start=0xa2000, n=0x100)\n")
    edges = [0x2000, 0x20FF, 0x1FFF, 0x2100]  # first, last, just before, just after
    assert values.claim_edges_in(state, state.handles[1][1]) == edges
    rng = random.Random(4)
    offsets = [values.fill(load_families()["touch"], state, rng).offset for _ in range(300)]
    assert sum(o in edges for o in offsets) > 100  # P_CLAIMED of them


def test_an_operation_chosen_for_a_handle_takes_that_handle():
    state = _state("r0 = open_devmem()\nr1 = mmap(file=r0, offset=0xa0000)\n"
                   "r2 = mmap(file=r0, offset=0xc0000)\n")
    first = state.handles[1][1]
    rng = random.Random(5)
    picked = [values.fill(load_families()["touch"], state, rng, focus=first).vma
              for _ in range(200)]
    assert picked.count(1) > 150  # P_FOCUS of them, and some by the latest-first draw


def test_a_claim_that_meets_a_mapping_is_often_followed_by_an_access_through_it():
    program = parse_program("r0 = open_devmem()\nr1 = mmap(file=r0, offset=0xa0000)\n"
                            "r2 = request_mem_region(start=0xa0000, n=0x100)\n")
    gen = Generator(PROFILE, random.Random(11))
    ops = list(program.ops)
    ex = gen._start(ops, None)
    for o in ops:
        ex.step(o)
    lines = [gen._line(ex, ops, gen.table.classes) for _ in range(200)]
    probes = [o for o in lines if type(o).NAME in ("touch", "ptrace_access")]
    # P_PROBE of them, and a few by the choice table; each through r1, mostly inside
    # at the claim's edges (P_CLAIMED): where a revocation should have left nothing, and
    # just past it, where a byte-exact one should have left the mapping alone.
    assert 80 < len(probes) < 160, len(probes)
    assert all(o.vma == 1 for o in probes)
    assert sum(o.offset in (0, 0xFF, 0x100) for o in probes) > len(probes) // 2


def test_a_line_that_revoked_a_mapping_is_often_followed_by_an_access_through_it():
    """B7's chain: the driver's bind (not a claim line) takes the whole shared page from
    the other card's mapping; the next line often asks whether bytes no driver claims
    went with it."""
    program = parse_program(
        'r0 = hotadd(dev="0000:00:03.0", bars="mem:0x100")\n'
        'r1 = hotadd(dev="0000:00:04.0", bars="mem:0x100", ids="1234:11e8")\n'
        'r2 = open_resource(dev="0000:00:03.0")\nr3 = mmap(file=r2)\n'
        'r4 = module_load(driver="drv", ids="1234:11e8")\n')
    profile = resolve("v6.1-deb-byte-exact")
    gen = Generator(profile, random.Random(12))
    ops = list(program.ops)
    ex = gen._start(ops, None)
    for o in ops:
        ex.step(o)
    assert generate._revoked(ex.steps[-1])
    lines = [gen._line(ex, ops, gen.table.classes) for _ in range(200)]
    probes = [o for o in lines if type(o).NAME in ("touch", "ptrace_access")]
    assert len(probes) > 80 and all(o.vma == 3 for o in probes), len(probes)
    # Just before the claimed BAR: a byte of the mapped card's own BAR.
    assert any(o.offset == 0xFF for o in probes)


def test_a_claim_chosen_for_a_mapping_is_mostly_one_that_revokes_and_never_a_port_claim():
    table = ChoiceTable(ordered_ops())
    rng = random.Random(13)
    picked = []
    for _ in range(4000):
        cls, index = table.next(rng, table.classes, [("mmap", "Vma")], ["mapping"])
        if index is not None and cls in table.claimers:
            picked.append(cls.NAME)
    revoking = sum(n in generate.REGION_CLAIMS for n in picked)
    assert "request_muxed_region" not in picked
    assert revoking > len(picked) * 0.6, (revoking, len(picked))  # P_REVOKING and a share
