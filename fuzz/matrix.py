"""The bug × profile matrix: every catalog reproducer run on every profile, as data.

This is the project's answer to the 2021 LKML thread in one table: for each catalogued
bug (a row, fuzz/catalog.toml) and each kernel, config or design (a profile,
model/profile.py), does the bug's reproducer produce a finding there, and with which
signatures? :func:`compute` runs the Programs; fuzz/matrix_report.py turns the result
into text, Markdown and the generated summaries; fuzz/pictures/heatmap.py draws it.

**Rows.** One per catalog entry with a reproducer (the entry's ``reproducer``), plus a
*variant* row (``B5′``) for a ``see_also`` file under ``corpus/findings/`` that names the
entry in its ``# catalog:`` header and whose verdict differs from the reproducer's on
some profile: the same bug reached another way (the claim before the mapping, or with
the by-design acceptance dropped). A variant with the same verdict everywhere adds
nothing and is left out. Entries without a reproducer are listed, not run.

**Columns.** Every profile in ``PROFILES`` (a new profile appears on its own), grouped
by the question it answers (fuzz/matrix_report.py ``groups``). The planted ``test-*``
profiles are run only for the rows whose reproducer lives on them.

**Overrides.** A reproducer whose ``# profile:`` carries overrides
(``v5.15:iomem_cmdline=relaxed``) needs them (a boot parameter, a config, a machine
property): they are applied on every column, so the cell reads "this kernel, with what
the reproducer needs". Its ``# machine:`` header is kept too.

**Cell states**, decided in this order:

* ``not-run``: a planted profile the row does not need.
* ``n/a`` (conflict): an override changes a setting that defines the column (one where
  the column differs from the default profile), so the column's question cannot be asked
  of this reproducer. ``by_design`` overrides never conflict: they are the promise the
  file holds the kernel to, not the kernel.
* ``finding``: the run reports violations the profile does not accept; the cell lists
  their signatures.
* ``other-finding``: it does, but every one of them names another catalog entry
  (Violation.catalog): the row's own bug is gone and the route now meets a different one
  (B19's relaxed boot on a v5.16+ kernel shows only B5).
* ``by-design``: nothing reported, but the profile accepted violations as by design
  (Trace.accepted); the cell lists the accepted signatures.
* ``n/a`` (contract): a line shows ``illegal``: it plays an in-kernel caller that would
  break the driver contract (fuzz/contract.py), which this profile does not let a
  Program do, so the reproducer's route does not exist.
* ``n/a`` (missing): a line that succeeded on the reproducer's own profile gets
  ENOENT or ENODEV here: the file, attribute or device it uses does not exist on this
  kernel (EPERM and the like are answers, not absences: lockdown refusing /dev/mem is a
  clean cell).
* ``clean``: nothing found, nothing accepted.

Every cell also records each line's outcome, so a report can say *how* two clean cells
differ (fail-the-claim: the driver's request gets EBUSY where revoke gives the user
SIGBUS).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iomemfuzz.fuzz.catalog import ROOT, Catalog, Entry, load
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_op
from iomemfuzz.fuzz.trace import Trace
from iomemfuzz.model.profile import DEFAULT, PROFILES, resolve

FINDING = "finding"
OTHER = "other-finding"
BY_DESIGN = "by-design"
CLEAN = "clean"
NOT_APPLICABLE = "n/a"
NOT_RUN = "not-run"
STATES = (FINDING, OTHER, BY_DESIGN, CLEAN, NOT_APPLICABLE, NOT_RUN)

# Why a cell is n/a.
CONFLICT = "conflict"
CONTRACT = "contract"
MISSING = "missing"
REASONS = {
    CONFLICT: "the reproducer overrides a setting that defines this profile",
    CONTRACT: "a line would break the driver contract and does not run (illegal)",
    MISSING: "a file or device the reproducer uses does not exist on this kernel",
}

PLANTED_PREFIX = "test-"
# Errnos that say "no such thing here", as opposed to "refused".
_ABSENT = frozenset({"ENOENT", "ENODEV"})
# Fields an override may set without changing which kernel a column is.
_PROMISES = frozenset({"by_design"})
_FINDINGS_DIR = "corpus/findings/"
_PRIMES = ("′", "″", "‴")


@dataclass(frozen=True, slots=True)
class Row:
    """One Program run on every profile: an entry's reproducer, or a variant of it."""

    key: str  # "B5", or "B5′" for a variant
    entry: str  # the catalog id
    title: str
    klass: str  # the catalog class
    path: str  # from the repository root
    home: str  # the reproducer's own profile, with its overrides
    variant: bool = False

    @property
    def base(self) -> str:
        return self.home.partition(":")[0]

    @property
    def overrides(self) -> str:
        return self.home.partition(":")[2]

    @property
    def planted(self) -> bool:
        return self.base.startswith(PLANTED_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "entry": self.entry, "title": self.title,
                "class": self.klass, "path": self.path, "home": self.home,
                "variant": self.variant}


@dataclass(frozen=True, slots=True)
class Cell:
    """What one row's Program did on one profile."""

    row: str
    profile: str
    state: str
    ran_as: str = ""  # the profile spec run (the column plus the row's overrides)
    signatures: tuple[str, ...] = ()  # reported, in order of first occurrence
    classes: tuple[str, ...] = ()  # the class of each reported signature
    accepted: tuple[str, ...] = ()  # accepted as by design
    catalogs: tuple[str, ...] = ()  # catalog ids the reported violations name
    reason: str = ""  # for n/a: CONFLICT, CONTRACT or MISSING
    outcomes: tuple[str, ...] = ()  # each line's outcome label

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "profile": self.profile, "state": self.state,
                "ran_as": self.ran_as, "signatures": list(self.signatures),
                "classes": list(self.classes), "accepted": list(self.accepted),
                "catalogs": list(self.catalogs), "reason": self.reason,
                "outcomes": list(self.outcomes)}


@dataclass(frozen=True, slots=True)
class Matrix:
    rows: tuple[Row, ...]
    profiles: tuple[str, ...]  # every column, in PROFILES order
    cells: Mapping[tuple[str, str], Cell]  # (row key, profile) -> cell
    # Each row's Program as text lines, for reports that quote an operation.
    ops: Mapping[str, tuple[str, ...]]
    # Catalog entries that are not rows, and why.
    left_out: tuple[tuple[str, str], ...] = ()

    def cell(self, row: str, profile: str) -> Cell:
        return self.cells[row, profile]

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "profiles": [{"name": p, "description": resolve(p).description}
                         for p in self.profiles],
            "cells": [self.cells[r.key, p].to_dict() for r in self.rows
                      for p in self.profiles],
            "ops": {k: list(v) for k, v in self.ops.items()},
            "left_out": [{"id": i, "why": why} for i, why in self.left_out],
        }


# --- running one cell ---------------------------------------------------------------------


def _override_keys(overrides: str) -> list[str]:
    return [item.partition("=")[0].strip() for item in overrides.split(",") if item.strip()]


def conflicts(profile: str, overrides: str) -> list[str]:
    """The settings ``overrides`` changes that define ``profile`` (where it differs from
    the default profile); by_design never conflicts."""
    if not overrides:
        return []
    column = PROFILES[profile]
    ran = resolve(f"{profile}:{overrides}")
    out = []
    for key in _override_keys(overrides):
        if key in _PROMISES:
            continue
        mine = getattr(column, key)
        if mine != getattr(DEFAULT, key) and getattr(ran, key) != mine:
            out.append(key)
    return out


def _labels(trace: Trace, n: int) -> tuple[str, ...]:
    return tuple(s.outcome.label if s.outcome is not None else "" for s in trace.steps[:n])


def _own(entry: str, trace: Trace) -> bool:
    """Is a reported violation the row's own bug: one that names the entry or its group,
    or one no catalog entry claims?"""
    group = entry.rstrip("abcdefghijklmnopqrstuvwxyz")
    return any(v.catalog in ("", entry, group) for v in trace.violations)


def _state(entry: str, trace: Trace, outcomes: tuple[str, ...],
           home: tuple[str, ...]) -> tuple[str, str]:
    if trace.signatures:
        return (FINDING if _own(entry, trace) else OTHER), ""
    if trace.accepted:
        return BY_DESIGN, ""
    if "illegal" in outcomes:
        return NOT_APPLICABLE, CONTRACT
    if any(h == "ok" and o in _ABSENT for h, o in zip(home, outcomes, strict=True)):
        return NOT_APPLICABLE, MISSING
    return CLEAN, ""


def run_cell(row: Row, program: Program, profile: str, home: tuple[str, ...]) -> Cell:
    """Run ``program`` (``row``'s) on column ``profile``; ``home`` is each line's outcome
    on the row's own profile."""
    if profile.startswith(PLANTED_PREFIX) and profile != row.base:
        return Cell(row.key, profile, NOT_RUN)
    spec = f"{profile}:{row.overrides}" if row.overrides else profile
    if conflicts(profile, row.overrides):
        return Cell(row.key, profile, NOT_APPLICABLE, spec, reason=CONFLICT)
    trace = run(program, spec)
    outcomes = _labels(trace, len(program.lines))
    state, reason = _state(row.entry, trace, outcomes, home)
    classes: dict[str, str] = {}
    for v in trace.violations:
        classes.setdefault(v.signature, v.cls)
    accepted = tuple(dict.fromkeys(v.signature for v in trace.accepted))
    catalogs = tuple(dict.fromkeys(v.catalog for v in trace.violations if v.catalog))
    return Cell(row.key, profile, state, spec, trace.signatures,
                tuple(classes[s] for s in trace.signatures), accepted, catalogs, reason,
                outcomes)


# --- the whole matrix ---------------------------------------------------------------------


def columns(rows: Iterable[Row], profiles: Iterable[str] | None = None) -> tuple[str, ...]:
    """Every profile except the planted ones no row lives on, in PROFILES order."""
    homes = {r.base for r in rows}
    names = PROFILES if profiles is None else profiles
    return tuple(p for p in names if not p.startswith(PLANTED_PREFIX) or p in homes)


def _row(entry: Entry, path: str, program: Program, key: str, variant: bool) -> Row:
    return Row(key, entry.id, entry.title, entry.klass, path,
               program.profile or DEFAULT.name, variant)


def verdict(state: str) -> str:
    """The coarse verdict of a state: reported, accepted, clean, or not asked."""
    return {OTHER: FINDING, NOT_RUN: NOT_APPLICABLE}.get(state, state)


def _same(a: Iterable[Cell], b: Iterable[Cell]) -> bool:
    """Do two rows give the same verdict everywhere (signatures, and which entry a
    finding names, may differ)?"""
    return all(verdict(x.state) == verdict(y.state) for x, y in zip(a, b, strict=True))


def compute(catalog: Catalog | None = None, root: Path | None = None,
            profiles: Iterable[str] | None = None) -> Matrix:
    """Run every reproducer (and every see_also finding that tells something more) on
    every profile. ``root`` is the checkout holding ``corpus/`` (default: this one)."""
    catalog = catalog if catalog is not None else load()
    root = root if root is not None else ROOT
    rows: list[Row] = []
    cells: dict[tuple[str, str], Cell] = {}
    ops: dict[str, tuple[str, ...]] = {}
    left_out: list[tuple[str, str]] = []
    wanted = list(PROFILES if profiles is None else profiles)
    for entry in catalog:
        if not entry.reproducer:
            left_out.append((entry.id, "no reproducer in the corpus"))
            continue
        candidates = [entry.reproducer] + [p for p in entry.see_also
                                           if p.startswith(_FINDINGS_DIR)]
        mine: list[Row] = []
        for path in candidates:
            variant = bool(mine)
            if len(mine) > len(_PRIMES):
                break
            program = read_program(str(root / path))
            if variant and entry.id not in program.catalog:
                continue  # a file about another entry that also shows this one
            key = entry.id + (_PRIMES[len(mine) - 1] if variant else "")
            row = _row(entry, path, program, key, variant)
            home_trace = run(program, row.home)
            home = _labels(home_trace, len(program.lines))
            cols = columns([row], wanted)
            got = {p: run_cell(row, program, p, home) for p in cols}
            if variant:
                first = mine[0]
                shared = [p for p in cols if (first.key, p) in cells]
                if _same((got[p] for p in shared), (cells[first.key, p] for p in shared)):
                    continue
            mine.append(row)
            for p, c in got.items():
                cells[row.key, p] = c
            ops[row.key] = tuple(format_op(o) for o in program.ops)
        rows.extend(mine)
    cols = columns(rows, wanted)
    for r in rows:
        for p in cols:
            if (r.key, p) not in cells:
                cells[r.key, p] = Cell(r.key, p, NOT_RUN)
    return Matrix(tuple(rows), cols, cells, ops, tuple(left_out))


# --- comparing two cells ------------------------------------------------------------------


def outcome_changes(m: Matrix, row: str, before: str, after: str) -> list[str]:
    """Lines whose outcome differs between two cells of ``row``: "[2] request_mem_region:
    ok -> EBUSY" (a line that ran nowhere, EBADF on both, is not a change)."""
    a, b = m.cell(row, before), m.cell(row, after)
    out = []
    for i, (x, y) in enumerate(zip(a.outcomes, b.outcomes, strict=False)):
        if x != y:
            name = m.ops[row][i].partition("(")[0]
            out.append(f"[{i}] {name}: {x} -> {y}")
    return out


def setting_changes(base: str, other: str) -> list[str]:
    """``other``'s settings that differ from ``base``'s, as ``field=value``."""
    a, b = resolve(base).settings(), resolve(other).settings()
    out = []
    for key, value in b.items():
        if a[key] != value:
            if isinstance(value, frozenset):
                value = "|".join(sorted(value)) or "none"
            out.append(f"{key}={value}")
    return out


# --- digests ------------------------------------------------------------------------------


def canonical_json(data: Any) -> str:
    """The JSON text a digest is taken of: sorted keys, no spacing choices."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(data: Any) -> str:
    """SHA-256 of ``data`` as canonical JSON: what a picture was drawn from."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


_VERSION = re.compile(r"v(\d+)\.(\d+)(?:\.(\d+))?(-deb)?")


def version_key(name: str) -> tuple[float, ...] | None:
    """Sort key of a kernel-version profile (``v5.12``, ``v6.1-deb``, ``next-2026``), None
    for a config or design variant."""
    m = _VERSION.fullmatch(name)
    if m:
        major, minor, patch, deb = m.groups()
        return (int(major), int(minor), int(patch or 0), 1 if deb else 0)
    if re.fullmatch(r"next-\d{4}", name):
        return (float("inf"), int(name[5:]), 0, 0)
    return None
