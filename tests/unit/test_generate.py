"""The state-aware generator (fuzz/generate.py, fuzz/values.py): deterministic per seed,
handles only from their producers, values from the state, and it finds what the
catalogue says it should from nothing (counted in Programs, never timed)."""

from __future__ import annotations

import random

import pytest
from iomemfuzz.fuzz import values
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
