"""The bug × profile matrix: its cells follow the documented rules, its summaries say
what the cells say, new profiles join on their own, and docs/ holds its current output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from iomemfuzz.fuzz import matrix as mx
from iomemfuzz.fuzz import matrix_report as report
from iomemfuzz.fuzz.catalog import Catalog, load
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.model import profile as profiles

ROOT = Path(__file__).resolve().parents[2]
# Every reproducer on every profile, in a module fixture: about ten seconds.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def m():
    # How long it takes is a benchmark's business (the command prints it), not a test's.
    return mx.compute()


def test_the_whole_matrix_has_a_cell_per_row_and_profile(m):
    assert len(m.cells) == len(m.rows) * len(m.profiles)


def test_every_entry_with_a_reproducer_is_a_row_and_the_others_are_listed(m):
    catalog = load()
    primary = [r.entry for r in m.rows if not r.variant]
    assert primary == [e.id for e in catalog if e.reproducer]
    assert [i for i, _ in m.left_out] == [e.id for e in catalog if not e.reproducer]


def test_columns_are_every_profile_but_planted_ones_no_row_needs(m):
    real = [p for p in profiles.PROFILES if not p.startswith("test-")]
    assert [p for p in m.profiles if not p.startswith("test-")] == real
    planted = {p for p in m.profiles if p.startswith("test-")}
    assert planted == {r.base for r in m.rows if r.planted}
    # A planted profile runs only the rows that live on it.
    assert m.cell("B1", "test-iomem-inode-fails").state == mx.NOT_RUN
    assert m.cell("B25", "test-iomem-inode-fails").state == mx.FINDING


def test_each_row_finds_on_its_own_profile_what_its_file_expects(m):
    for r in m.rows:
        program = read_program(str(ROOT / r.path))
        expected = {e.partition(" ")[2] for e in program.expectations().get(None, ())
                    if e.startswith("finding")}
        cell = m.cell(r.key, r.base)
        assert set(cell.signatures) == expected, (r.key, cell)
        assert cell.ran_as == r.home


def test_cell_rules(m):
    b1 = m.cell("B1", "v6.1-deb")
    assert b1.state == mx.FINDING and b1.classes[0] == "race"
    assert ("duplicate-attributes/duplicate-filename/pci_create_attr/"
            "pci_sysfs_init-then-pci_bus_add_device") in b1.signatures
    assert m.cell("B1", "next-2026").state == mx.CLEAN  # static attributes
    # The driver contract: B16's release does not run unless callers may misuse.
    b16 = m.cell("B16", "v6.1-deb")
    assert (b16.state, b16.reason) == (mx.NOT_APPLICABLE, mx.CONTRACT)
    assert "illegal" in b16.outcomes
    assert "B16" in m.cell("B16", "v6.1-deb-misuse").catalogs
    # Accepted by design on the relaxed configurations.
    b5 = m.cell("B5", "v6.1-deb-relaxed")
    assert b5.state == mx.BY_DESIGN and b5.accepted and not b5.signatures
    # legacy_mem does not exist on next-2026: the question cannot be asked there.
    b11a = m.cell("B11a", "next-2026")
    assert (b11a.state, b11a.reason) == (mx.NOT_APPLICABLE, mx.MISSING)
    # The reproducer's override travels: B19 boots every kernel with iomem=relaxed, and
    # from v5.16 what remains is B5's mapping, not B19.
    b19 = m.cell("B19", "v6.1")
    assert b19.ran_as == "v6.1:iomem_cmdline=relaxed"
    assert (b19.state, b19.catalogs) == (mx.OTHER, ("B5",))
    assert m.cell("B19", "v5.15").state == mx.FINDING
    # A refusal is an answer: lockdown keeps /dev/mem closed, the cell is clean.
    assert m.cell("B22", "v6.1-deb-lockdown").state == mx.CLEAN


def test_an_override_of_a_setting_that_defines_the_column_is_a_conflict():
    assert mx.conflicts("v6.1-deb-relaxed", "iomem_cmdline=strict") == ["iomem_cmdline"]
    assert mx.conflicts("v6.1-deb", "iomem_cmdline=relaxed") == []
    assert mx.conflicts("v6.1-deb-relaxed", "by_design=") == []  # a promise, not a kernel
    assert mx.conflicts("v5.7", "revoke_devmem=y") == ["revoke_devmem"]
    row = mx.Row("X", "B5", "t", "race", "corpus/x.prog", "v6.1-deb:iomem_cmdline=strict")
    cell = mx.run_cell(row, read_program(str(ROOT / "corpus/findings/v6.1-deb/"
                                                    "b5-low-mib-claim-not-revoked.prog")),
                       "v6.1-deb-relaxed", ())
    assert (cell.state, cell.reason) == (mx.NOT_APPLICABLE, mx.CONFLICT)


def test_variant_rows_are_see_also_findings_that_change_a_verdict(m):
    variants = [r for r in m.rows if r.variant]
    assert variants and all(r.key.startswith(r.entry) and r.key != r.entry for r in variants)
    catalog = load()
    for r in variants:
        assert r.path in catalog.resolve(r.entry)[0].see_also
        primary = m.row(r.entry)
        assert any(mx.verdict(m.cell(r.key, p).state) != mx.verdict(m.cell(primary.key,
                                                                           p).state)
                   for p in m.profiles)


def test_summaries_are_computed_from_the_cells(m):
    fail = report.compare(m, "v6.1-deb", "v6.1-deb-claim-fails")
    assert {"B5", "B6"} <= set(fail.removes)
    assert not fail.introduces
    assert ("B15", "[2] request_mem_region: ok -> EBUSY") in fail.behaves
    static = report.compare(m, "v6.1-deb", "next-2026")
    assert {"B1", "B2", "B3"} <= set(static.removes)
    assert "B11a" in static.unasked
    assert report.compare(m, "v6.1-deb", "v6.1-deb-byte-exact").introduces == ("B7",)
    assert "B16" in report.compare(m, "v6.1-deb", "v6.1-deb-misuse").introduces
    relaxed = report.compare(m, "v6.1-deb", "v6.1-deb-relaxed")
    assert "B5" in relaxed.accepts
    for g in report.groups(m):
        for sentence in report.summaries(m, g):
            assert sentence.endswith(".")
    design = next(g for g in report.groups(m) if g.key == "design")
    text = " ".join(report.summaries(m, design))
    assert "v6.1-deb-claim-fails — fail the claim while mapped: claim_policy=fail against " \
           "v6.1-deb — removes B5, B6" in text


def test_groups_answer_the_thread_and_take_new_profiles(m, monkeypatch):
    keys = [g.key for g in report.groups(m)]
    assert keys[:4] == ["design", "attributes", "strictness", "contract"]
    assert "versions" in keys and keys[-1] == "planted"
    versions = next(g for g in report.groups(m) if g.key == "versions")
    assert versions.profiles[0] == "v5.7" and versions.profiles[-1] == "next-2026"
    # A profile another branch adds shows up with no change here.
    extra = {"v6.12": dataclasses.replace(profiles.DEFAULT, name="v6.12", description="x"),
             "v6.1-deb-other": dataclasses.replace(profiles.DEFAULT, name="v6.1-deb-other",
                                                   description="y")}
    monkeypatch.setattr(profiles, "PROFILES", {**profiles.PROFILES, **extra})
    monkeypatch.setattr(mx, "PROFILES", profiles.PROFILES)
    one = Catalog(tuple(e for e in load() if e.id == "B11b"), {})
    small = mx.compute(one)
    assert {"v6.12", "v6.1-deb-other"} <= set(small.profiles)
    gs = {g.key: g for g in report.groups(small)}
    order = gs["versions"].profiles
    assert order.index("v6.1-deb") < order.index("v6.12") < order.index("next-2026")
    assert gs["other"].profiles == ("v6.1-deb", "v6.1-deb-other")


def test_version_keys_order_kernels():
    names = ["next-2026", "v6.12", "v5.8", "v6.1-deb", "v6.1", "v5.12"]
    assert sorted(names, key=mx.version_key) == ["v5.8", "v5.12", "v6.1", "v6.1-deb", "v6.12",
                                                 "next-2026"]
    assert mx.version_key("v6.1-deb-relaxed") is None


def test_text_markdown_and_json_forms(m):
    text = report.text(m)
    assert "== 1. Revoke the mapping, fail the claim" in text
    assert "removes B5, B6" in text
    md = report.markdown(m)
    assert md.startswith("# The bug × profile matrix")
    assert "](matrix.svg)" in md and "### 1. Revoke" in md and "## How a cell is decided" in md
    doc = json.loads(report.json_text(m))
    assert {"rows", "profiles", "cells", "groups", "states", "reasons"} <= set(doc)
    assert len(doc["cells"]) == len(m.rows) * len(m.profiles)
    design = next(g for g in doc["groups"] if g["key"] == "design")
    assert design["changes"][0]["profile"] == "v6.1-deb-claim-fails"
    heat = report.heatmap_data(m)
    assert heat["columns"] == [r.key for r in m.rows]
    assert all(len(row["states"]) == len(m.rows) for g in heat["groups"] for row in g["rows"])


def test_docs_hold_the_current_matrix_and_pictures(m):
    from iomemfuzz.fuzz.pictures.docs import stale

    assert stale(ROOT, m) == [], "run `iomemfuzz matrix --write-docs`"
