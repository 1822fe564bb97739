"""The yardstick (tools/baseline_hypothesis.py) asks what the catalog reproducers show:
its invariants break on the catalog's chains and hold on the near misses, so a ratio
against it compares like with like."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "tools" / "baseline_hypothesis.py"
spec = importlib.util.spec_from_file_location("baseline_hypothesis", PATH)
baseline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(baseline)


def _machine(profile: str, wanted: str):
    return baseline.machine_for(profile, wanted)()


def test_b16_breaks_on_a_release_with_another_length():
    m = _machine("v6.1-deb-misuse", "release-keeps-busy")
    m.claim(0xFE000000, 0x100)
    with pytest.raises(baseline.Found):
        m.release(0xFE000000, 0x80)


def test_b16_holds_on_a_release_of_a_region_nobody_claimed_or_the_right_one():
    m = _machine("v6.1-deb-misuse", "release-keeps-busy")
    m.release(0xFE000000, 0x80)  # "Trying to free nonexistent resource": not B16's chain
    m.claim(0xFE000000, 0x100)
    m.release(0xFE000000, 0x100)
    m.release(0xFE000000, 0x100)  # twice
    m.log_is_clean()


def test_b5_breaks_on_a_low_mib_mapping_made_before_the_claim():
    m = _machine("v6.1-deb", "mapping-survives-claim")
    f = m.open_devmem()
    vma = m.mmap(f, 0xA0000)
    m.claim(0xA0000, 0x100)
    with pytest.raises(baseline.Found):
        m.touch(vma, 0x10)


def test_b5_holds_when_the_claim_revokes_the_mapping():
    m = _machine("v6.1-deb", "mapping-survives-claim")
    f = m.open_devmem()
    vma = m.mmap(f, 0xFE000000)
    m.claim(0xFE000000, 0x1000)
    m.touch(vma, 0x10)  # revoked above 1 MiB: the touch faults, nothing survives
