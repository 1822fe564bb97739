"""The bug catalog as data: load ``catalog.toml``, check it, look entries up, print them.

The catalog names every kernel bug or design hole the model reproduces (``B1`` ... ``B29h``
from the original catalog, ``BD1`` ... for what iomemfuzz itself discovered), says whose
fault it is (its class), which kernel functions, versions and commits are involved, and
which corpus Program shows it. Code, tests and corpus headers cite its ids;
``docs/CATALOG.md`` is generated from it by ``tools/update_docs.py``.

Signatures are not part of the catalog: they depend on the oracles, so
:func:`replay_reproducer` finds them by running the entry's reproducer. Everything else
here is plain data handling and never touches the model.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TextIO

# Whose fault a catalogued behaviour is; the same four classes findings carry.
CLASSES: dict[str, str] = {
    "userspace": "a process reaches it through system calls and files alone",
    "race": "legal kernel paths interleaved, or a driver's claim meeting what userspace holds",
    "driver-misuse": "only reachable when an in-kernel caller breaks the API contract",
    "by-design": "the kernel accepts it on purpose",
}

# What a listed commit did to the entry.
ROLES = ("introduced", "fixed", "partly-fixed", "changed", "related")

PATH = Path(__file__).with_name("catalog.toml")
# The checkout this module lives in: reproducer paths are relative to it.
ROOT = Path(__file__).resolve().parent.parent

# B: the original catalog. BD: discovered by iomemfuzz. (A bare D would collide with the
# test vectors D1-D25 of docs/SEMANTICS.md §8.3, which are cited the same way.)
PREFIXES = ("BD", "B")
ENTRY_ID = re.compile(r"BD?[1-9][0-9]*[a-z]?")
GROUP_ID = re.compile(r"BD?[1-9][0-9]*")
_COMMIT_ID = re.compile(r"[0-9a-f]{12,40}")
_REPRODUCER = re.compile(r"corpus/[A-Za-z0-9_./+-]+\.prog")

_ENTRY_KEYS = {"id": str, "title": str, "class": str, "mechanism": str, "functions": list,
               "versions": str, "reproducer": str}
_ENTRY_OPTIONAL = {"commits": list, "reproducer_note": str, "see_also": list}
_COMMIT_KEYS = {"id": str, "title": str, "role": str}
_COMMIT_OPTIONAL = {"note": str}


class CatalogError(ValueError):
    """The catalog file is malformed, or an id does not resolve."""


@dataclass(frozen=True, slots=True)
class Commit:
    id: str  # abbreviated upstream id, or "" for a change without a stable one
    title: str
    role: str
    note: str = ""

    def describe(self) -> str:
        text = f"{self.id or '(no id)'} {self.title}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    klass: str
    mechanism: str
    functions: tuple[str, ...]
    versions: str
    commits: tuple[Commit, ...]
    reproducer: str  # "" when the corpus has none
    reproducer_note: str = ""
    see_also: tuple[str, ...] = ()

    @property
    def group(self) -> str | None:
        """``B29`` for ``B29c``; None for an entry without a letter."""
        return self.id.rstrip("abcdefghijklmnopqrstuvwxyz") if self.id[-1].isalpha() else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "class": self.klass,
            "mechanism": self.mechanism, "functions": list(self.functions),
            "versions": self.versions,
            "commits": [{"id": c.id, "title": c.title, "role": c.role, "note": c.note}
                        for c in self.commits],
            "reproducer": self.reproducer, "reproducer_note": self.reproducer_note,
            "see_also": list(self.see_also), "group": self.group,
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    entries: tuple[Entry, ...]
    groups: Mapping[str, str]  # group id -> title

    def __contains__(self, ident: object) -> bool:
        return isinstance(ident, str) and bool(self._members(ident))

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.entries)

    def get(self, ident: str) -> Entry:
        """The entry ``ident`` names (``B16``, ``B29c``); CatalogError for a group or an
        unknown id."""
        key = _normal(ident)
        if key in self.groups:
            raise CatalogError(f"{key} is a group of entries, not one entry: "
                               f"{', '.join(e.id for e in self._members(key))}")
        found = self._members(key)
        if not found:
            raise CatalogError(f"no catalog entry {ident!r}")
        return found[0]

    def resolve(self, ident: str) -> tuple[Entry, ...]:
        """Every entry ``ident`` stands for: one entry, or all the members of a group."""
        found = self._members(ident)
        if not found:
            raise CatalogError(f"no catalog entry {ident!r}")
        return found

    def _members(self, ident: str) -> tuple[Entry, ...]:
        ident = _normal(ident)
        exact = tuple(e for e in self.entries if e.id == ident)
        if exact:
            return exact
        if ident in self.groups:
            return tuple(e for e in self.entries if e.group == ident)
        return ()


def _normal(ident: str) -> str:
    """``b16`` as well as ``B16``, ``bd3`` as well as ``BD3``; a suffix letter stays lower
    case (``B29c``)."""
    ident = ident.strip()
    for prefix in PREFIXES:
        head, rest = ident[:len(prefix)], ident[len(prefix):]
        if head.upper() == prefix and rest[:1].isdigit():
            return prefix + rest
    return ident


# --- loading and checking ---------------------------------------------------------------------


def _flat(text: str) -> str:
    """Multi-line TOML strings as one paragraph."""
    return " ".join(text.split())


def _check_table(table: object, required: dict[str, type], optional: dict[str, type],
                 where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise CatalogError(f"{where}: expected a table, got {type(table).__name__}")
    unknown = sorted(set(table) - set(required) - set(optional))
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(set(required) - set(table))
    if missing:
        raise CatalogError(f"{where}: missing field(s) {', '.join(missing)}")
    for key, kind in {**required, **optional}.items():
        if key in table and not isinstance(table[key], kind):
            raise CatalogError(f"{where}: {key} must be a {kind.__name__}, "
                               f"got {type(table[key]).__name__}")
    return table


def _strings(values: list, where: str) -> tuple[str, ...]:
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise CatalogError(f"{where}: expected a list of non-empty strings")
    return tuple(v.strip() for v in values)


def _commit(table: object, where: str) -> Commit:
    t = _check_table(table, _COMMIT_KEYS, _COMMIT_OPTIONAL, where)
    if t["id"] and not _COMMIT_ID.fullmatch(t["id"]):
        raise CatalogError(f"{where}: commit id {t['id']!r} is not 12-40 lowercase hex digits")
    if t["role"] not in ROLES:
        raise CatalogError(f"{where}: role {t['role']!r} is not one of {', '.join(ROLES)}")
    if not t["title"].strip():
        raise CatalogError(f"{where}: empty commit title")
    return Commit(t["id"], _flat(t["title"]), t["role"], _flat(t.get("note", "")))


def _entry(table: object, index: int) -> Entry:
    where = f"entry #{index + 1}"
    t = _check_table(table, _ENTRY_KEYS, _ENTRY_OPTIONAL, where)
    ident = t["id"]
    where = f"entry {ident}"
    if not ENTRY_ID.fullmatch(ident):
        raise CatalogError(f"{where}: id must look like B16, B29c or BD3")
    if t["class"] not in CLASSES:
        raise CatalogError(f"{where}: class {t['class']!r} is not one of "
                           f"{', '.join(CLASSES)}")
    for key in ("title", "mechanism", "versions"):
        if not t[key].strip():
            raise CatalogError(f"{where}: empty {key}")
    reproducer = t["reproducer"].strip()
    see_also = _strings(t.get("see_also", []), f"{where} see_also")
    for path in (reproducer, *see_also) if reproducer else see_also:
        if not _REPRODUCER.fullmatch(path) or ".." in path.split("/"):
            raise CatalogError(f"{where}: {path!r} is not a corpus/....prog path")
    if t.get("reproducer_note", "").strip() and not reproducer:
        raise CatalogError(f"{where}: reproducer_note without a reproducer")
    commits = tuple(_commit(c, f"{where} commit #{i + 1}")
                    for i, c in enumerate(t.get("commits", [])))
    return Entry(ident, _flat(t["title"]), t["class"], _flat(t["mechanism"]),
                 _strings(t["functions"], f"{where} functions"), _flat(t["versions"]),
                 commits, reproducer, _flat(t.get("reproducer_note", "")), see_also)


def parse(text: str, source: str = "<string>") -> Catalog:
    """The catalog in ``text``; CatalogError naming ``source`` and the field at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: {exc}") from None
    try:
        unknown = sorted(set(data) - {"groups", "entry"})
        if unknown:
            raise CatalogError(f"unknown top-level key(s) {', '.join(unknown)}")
        raw_entries = data.get("entry", [])
        if not isinstance(raw_entries, list) or not raw_entries:
            raise CatalogError("no [[entry]] tables")
        entries = tuple(_entry(t, i) for i, t in enumerate(raw_entries))
        groups = data.get("groups", {})
        if not isinstance(groups, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip()
                for k, v in groups.items()):
            raise CatalogError("[groups] must map group ids to titles")
        _check_ids(entries, groups)
    except CatalogError as exc:
        raise CatalogError(f"{source}: {exc}") from None
    return Catalog(entries, {k: _flat(v) for k, v in groups.items()})


def _check_ids(entries: tuple[Entry, ...], groups: dict[str, str]) -> None:
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            raise CatalogError(f"entry {e.id} appears twice")
        seen.add(e.id)
    for gid in groups:
        if not GROUP_ID.fullmatch(gid):
            raise CatalogError(f"group id {gid!r} must look like B29 or BD3")
        if gid in seen:
            raise CatalogError(f"{gid} is both an entry and a group")
        if not any(e.group == gid for e in entries):
            raise CatalogError(f"group {gid} has no entries")
    for e in entries:
        if e.group is not None and e.group not in groups:
            raise CatalogError(f"entry {e.id}: its group {e.group} has no title in [groups]")


def load(path: Path | str | None = None) -> Catalog:
    """The catalog at ``path`` (default: the one shipped next to this module)."""
    if path is None:
        return _default()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: {exc.strerror or exc}") from None
    return parse(text, str(path))


@cache
def _default() -> Catalog:
    return load(PATH)


# --- replaying a reproducer -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replay:
    """What an entry's reproducer does on its own profile."""

    path: str
    profile: str
    signatures: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()  # violations the profile accepts as by design
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return f"not replayed: {self.error}"
        found = ", ".join(self.signatures) or "clean"
        text = f"on {self.profile}: {found}"
        if self.accepted:
            text += f" (accepted by design: {', '.join(self.accepted)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "profile": self.profile, "signatures": list(self.signatures),
                "accepted": list(self.accepted), "error": self.error}


def _locate(relative: str, root: Path | None) -> Path:
    """The reproducer in ``root``; by default in this checkout, else (an installed package
    without the corpus) in the current directory."""
    if root is not None:
        return root / relative
    for base in (ROOT, Path.cwd()):
        if (base / relative).is_file():
            return base / relative
    return ROOT / relative


def replay_reproducer(entry: Entry, root: Path | None = None) -> Replay | None:
    """Run ``entry``'s reproducer on the profile its header names; None without one."""
    if not entry.reproducer:
        return None
    # Imported here: listing and printing the catalog never needs the model.
    from iomemfuzz.fuzz.executor import run
    from iomemfuzz.fuzz.program_file import read_program
    from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
    from iomemfuzz.model.profile import DEFAULT, ProfileError

    path = _locate(entry.reproducer, root)
    profile = DEFAULT.name
    if not path.is_file():
        return Replay(entry.reproducer, profile,
                      error=f"{entry.reproducer} is not here (run from a checkout)")
    try:
        program = read_program(str(path))
        profile = program.profile or DEFAULT.name
        trace = run(program, profile)
    except (OSError, ProgramSyntaxError, ProfileError, KeyError) as exc:
        return Replay(entry.reproducer, profile, error=str(exc))
    accepted = tuple(dict.fromkeys(v.signature for v in trace.accepted))
    return Replay(entry.reproducer, profile, trace.signatures, accepted)


# --- text, JSON and Markdown ------------------------------------------------------------------

_WIDTH = 92
_LABEL = 13


def _field(label: str, text: str) -> list[str]:
    """``label:`` and ``text`` wrapped under it; an empty label continues the field above."""
    first = f"{label + ':':<{_LABEL}}" if label else " " * _LABEL
    return textwrap.wrap(text, _WIDTH, initial_indent=first,
                         subsequent_indent=" " * _LABEL, break_on_hyphens=False,
                         break_long_words=False) or [f"{label}:"]


def format_entry(entry: Entry, replay: Replay | None = None) -> str:
    """One entry as a terminal would show it."""
    lines = [f"{entry.id}  {entry.title}", ""]
    lines += _field("class", f"{entry.klass} ({CLASSES[entry.klass]})")
    lines += _field("versions", entry.versions)
    lines += _field("functions", ", ".join(entry.functions))
    if entry.commits:
        for i, c in enumerate(entry.commits):
            lines += _field("commits" if i == 0 else "", f"{c.role}: {c.describe()}")
    else:
        lines += _field("commits", "none known")
    lines += _field("reproducer", entry.reproducer or "none in the corpus")
    if entry.reproducer_note:
        lines += _field("", entry.reproducer_note)
    if replay is not None:
        lines += _field("replayed", replay.describe())
    for i, path in enumerate(entry.see_also):
        lines += _field("see also" if i == 0 else "", path)
    lines.append("")
    lines += textwrap.wrap(entry.mechanism, _WIDTH, break_on_hyphens=False)
    return "\n".join(lines) + "\n"


def format_list(catalog: Catalog) -> str:
    """One line per entry: id, class, title."""
    width = max(len(i) for i in catalog.ids)
    lines = [f"{'id':<{width}}  {'class':<13}  title"]
    lines += [f"{e.id:<{width}}  {e.klass:<13}  {e.title}" for e in catalog]
    lines.append(f"{len(catalog)} entries; `iomemfuzz catalog ID` prints one "
                 "(a group id such as B29 prints its members).")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_fixes(entry: Entry) -> str:
    """The fixing commits, for the summary table: ids, or titles where there is no id."""
    fixes = [(f"`{c.id}`" if c.id else _md_escape(c.title))
             + (" (partly)" if c.role == "partly-fixed" else "")
             for c in entry.commits if c.role in ("fixed", "partly-fixed")]
    return ", ".join(fixes) or "—"


def markdown(catalog: Catalog) -> str:
    """docs/CATALOG.md."""
    out = [
        "# Bug catalog",
        "",
        "<!-- Generated from fuzz/catalog.toml by `python tools/update_docs.py`; do not edit. "
        "A test fails when this file and the data disagree. -->",
        "",
        "Every kernel bug or design hole the model reproduces, with the Program in `corpus/`",
        "that shows it. Code, tests and corpus headers (`# catalog: B16`) cite these ids;",
        "`iomemfuzz catalog ID` prints one entry and replays its reproducer to show the",
        "signature it produces. Ids are stable; numbers not listed are not assigned.",
        "`B` entries come from the original catalog; `BD` entries were discovered by",
        "iomemfuzz itself (their reproducers are the findings it stored). The kernel",
        "behaviour the entries rely on is described in [SEMANTICS.md](SEMANTICS.md).",
        "",
        "**Classes** (whose fault it is):",
        "",
        "| class | meaning |",
        "|---|---|",
    ]
    out += [f"| `{k}` | {v} |" for k, v in CLASSES.items()]
    out += ["", "| id | title | class | fixed by | reproducer |", "|---|---|---|---|---|"]
    for e in catalog:
        repro = f"[`{Path(e.reproducer).name}`](../{e.reproducer})" if e.reproducer else "—"
        out.append(f"| [{e.id}](#{e.id.lower()}) | {_md_escape(e.title)} | `{e.klass}` | "
                   f"{_md_fixes(e)} | {repro} |")
    if catalog.groups:
        out += ["", "Groups: " + "; ".join(
            f"**{g}** ({', '.join(e.id for e in catalog.resolve(g))}): {t}"
            for g, t in catalog.groups.items()) + "."]
    for e in catalog:
        out += ["", f"## {e.id}", "", f"**{_md_escape(e.title)}**", ""]
        if e.group:
            out += [f"Part of {e.group}: {catalog.groups[e.group]}.", ""]
        out += [e.mechanism, "",
                f"- **Class:** `{e.klass}` — {CLASSES[e.klass]}.",
                f"- **Versions:** {e.versions}",
                f"- **Kernel functions:** {', '.join(f'`{f}`' for f in e.functions)}"]
        if e.commits:
            out.append("- **Commits:**")
            out += [f"  - {c.role}: " + (f"`{c.id}` " if c.id else "") + f"{c.title}"
                    + (f" — {c.note}" if c.note else "") for c in e.commits]
        else:
            out.append("- **Commits:** none known.")
        if e.reproducer:
            line = f"- **Reproducer:** [`{e.reproducer}`](../{e.reproducer})"
            out.append(line + (f" — {e.reproducer_note}" if e.reproducer_note else ""))
        else:
            out.append("- **Reproducer:** none in the corpus.")
        if e.see_also:
            out.append("- **See also:** " + ", ".join(f"[`{p}`](../{p})" for p in e.see_also))
    return "\n".join(out) + "\n"


def show(ident: str | None = None, as_json: bool = False, *, out: TextIO | None = None,
         err: TextIO | None = None, catalog: Catalog | None = None, replay: bool = True) -> int:
    """``iomemfuzz catalog [ID] [--json]``: the list, one entry, or a group's entries.
    One entry's reproducer is replayed to show its signatures. Exit 0, or 2 for an unknown
    id (the message names the known ones)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    key = _normal(ident) if ident is not None else None
    try:
        if catalog is None:
            catalog = load()
        entries = catalog.resolve(key) if key is not None else None
    except CatalogError as exc:
        known = "" if catalog is None else f" (known: {', '.join(catalog.ids)})"
        print(f"iomemfuzz catalog: {exc}{known}", file=err)
        return 2
    if entries is None:
        if as_json:
            json.dump({"groups": dict(catalog.groups),
                       "entries": [e.to_dict() for e in catalog]}, out, indent=2)
            out.write("\n")
        else:
            out.write(format_list(catalog))
        return 0
    group = key if key in catalog.groups else None
    replays = [replay_reproducer(e) if replay else None for e in entries]
    if as_json:
        items = [{**e.to_dict(), "replay": r.to_dict() if r else None}
                 for e, r in zip(entries, replays, strict=True)]
        doc: Any = items[0] if group is None else {
            "group": group, "title": catalog.groups[group], "entries": items}
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    if group is not None:
        out.write(f"{group}  {catalog.groups[group]}\n\n")
    out.write("\n".join(format_entry(e, r) for e, r in zip(entries, replays, strict=True)))
    return 0
