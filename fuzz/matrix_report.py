"""The matrix as an answer: profiles grouped by the question they settle, a generated
summary per design, and the text, Markdown and JSON forms of it.

The LKML thread asked three things: should a driver's claim revoke user mappings, fail,
or revoke only the claimed bytes; are dynamic PCI sysfs files safe against the boot-time
path (or must they become static attributes); and what do the relaxed configurations
give away. Each is a :class:`Group` of profiles with a baseline (6.1-deb, what Linux
does), and the summary of a profile says what it changes against the baseline, computed
from the cells (fuzz/matrix.py). Kernel versions form a chain, each compared with the
one before. A profile added to model/profile.py lands in the version chain when its
name is a version (``v6.12``), else among "other profiles", compared with the default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from iomemfuzz.fuzz.matrix import (
    BY_DESIGN,
    CLEAN,
    CONFLICT,
    CONTRACT,
    FINDING,
    MISSING,
    NOT_APPLICABLE,
    NOT_RUN,
    OTHER,
    PLANTED_PREFIX,
    REASONS,
    Cell,
    Matrix,
    outcome_changes,
    setting_changes,
    version_key,
)
from iomemfuzz.model.profile import DEFAULT, resolve


@dataclass(frozen=True, slots=True)
class Question:
    """A question of the thread and the profiles that answer it (a table, not code)."""

    key: str
    title: str
    baseline: str
    others: tuple[str, ...]
    # What each profile stands for in this question, in words.
    roles: tuple[tuple[str, str], ...] = ()


QUESTIONS: tuple[Question, ...] = (
    Question("design", "Revoke the mapping, fail the claim, or revoke only the claimed "
             "bytes?", "v6.1-deb", ("v6.1-deb-claim-fails", "v6.1-deb-byte-exact"),
             (("v6.1-deb", "revoke (Linux since v5.8)"),
              ("v6.1-deb-claim-fails", "fail the claim while mapped"),
              ("v6.1-deb-byte-exact", "revoke, promising byte-exact"))),
    Question("attributes", "Dynamic PCI sysfs resource files, or static attributes?",
             "v6.1-deb", ("next-2026",),
             (("v6.1-deb", "dynamic files, pci_sysfs_init()"),
              ("next-2026", "static attributes"))),
    Question("strictness", "Strict /dev/mem, or the relaxed configurations?", "v6.1-deb",
             ("v6.1-deb-relaxed", "v6.1-deb-no-io-strict", "v6.1-deb-no-strict",
              "v6.1-deb-lockdown"),
             (("v6.1-deb", "STRICT_DEVMEM + IO_STRICT_DEVMEM"),
              ("v6.1-deb-relaxed", "iomem=relaxed"),
              ("v6.1-deb-no-io-strict", "IO_STRICT_DEVMEM=n"),
              ("v6.1-deb-no-strict", "STRICT_DEVMEM=n"),
              ("v6.1-deb-lockdown", "lockdown=integrity"))),
    Question("contract", "In-kernel callers that keep the driver contract, or break it?",
             "v6.1-deb", ("v6.1-deb-misuse",),
             (("v6.1-deb", "callers keep the contract"),
              ("v6.1-deb-misuse", "callers may break it"))),
)
VERSIONS = ("versions", "Which kernels have it?")
PLANTED = ("planted", "Planted faults and unreleased code (test profiles)")
OTHERS = ("other", "Other profiles")


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    title: str
    profiles: tuple[str, ...]
    # None: a chain, each profile compared with the one before it.
    baseline: str | None
    roles: tuple[tuple[str, str], ...] = ()
    summarise: bool = True

    def role(self, profile: str) -> str:
        return dict(self.roles).get(profile, "")


def groups(m: Matrix) -> tuple[Group, ...]:
    """The row-groups of the matrix, each a question; every profile is in at least one."""
    present = set(m.profiles)
    out: list[Group] = []
    placed: set[str] = set()
    for q in QUESTIONS:
        names = tuple(p for p in (q.baseline, *q.others) if p in present)
        if q.baseline in present and len(names) > 1:
            out.append(Group(q.key, q.title, names, q.baseline, q.roles))
            placed.update(names)
    versions = sorted((p for p in m.profiles if version_key(p) is not None), key=version_key)
    if versions:
        out.append(Group(VERSIONS[0], VERSIONS[1], tuple(versions), None))
        placed.update(versions)
    rest = tuple(p for p in m.profiles if p not in placed
                 and not p.startswith(PLANTED_PREFIX))
    if rest:
        base = DEFAULT.name if DEFAULT.name in present else rest[0]
        out.append(Group(OTHERS[0], OTHERS[1], (base, *[p for p in rest if p != base]),
                         base))
    planted = tuple(p for p in m.profiles if p.startswith(PLANTED_PREFIX))
    if planted:
        out.append(Group(PLANTED[0], PLANTED[1], planted, None, summarise=False))
    return tuple(out)


# --- comparing two profiles ---------------------------------------------------------------


def _own(c: Cell) -> bool:
    return c.state == FINDING


@dataclass(frozen=True, slots=True)
class Change:
    """What ``profile`` changes against ``base``, row by row (row keys)."""

    base: str
    profile: str
    removes: tuple[str, ...]
    accepts: tuple[str, ...]
    introduces: tuple[str, ...]
    resigns: tuple[str, ...]  # a finding on both, with other signatures
    unasked: tuple[str, ...]  # n/a here, asked on the base
    behaves: tuple[tuple[str, str], ...]  # no verdict change; (row, first outcome change)

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "profile": self.profile, "removes": list(self.removes),
                "accepts": list(self.accepts), "introduces": list(self.introduces),
                "changes_signatures": list(self.resigns), "not_applicable": list(self.unasked),
                "changes_outcomes": [{"row": r, "first": t} for r, t in self.behaves]}


def compare(m: Matrix, base: str, profile: str) -> Change:
    removes, accepts, introduces, resigns, unasked = [], [], [], [], []
    behaves: list[tuple[str, str]] = []
    for r in m.rows:
        b, p = m.cell(r.key, base), m.cell(r.key, profile)
        if NOT_RUN in (b.state, p.state):
            continue
        if _own(b) and p.state in (CLEAN, OTHER):
            removes.append(r.key)
        elif _own(b) and p.state == BY_DESIGN:
            accepts.append(r.key)
        elif _own(p) and not _own(b):
            introduces.append(r.key)
        elif _own(p) and set(p.signatures) != set(b.signatures):
            resigns.append(r.key)
        elif p.state == NOT_APPLICABLE and b.state != NOT_APPLICABLE:
            unasked.append(r.key)
        elif b.state == p.state and b.outcomes != p.outcomes:
            changes = outcome_changes(m, r.key, base, profile)
            if changes:
                behaves.append((r.key, changes[0]))
    return Change(base, profile, tuple(removes), tuple(accepts), tuple(introduces),
                  tuple(resigns), tuple(unasked), tuple(behaves))


def _ids(keys: Iterable[str], m: Matrix | None = None, profile: str = "") -> str:
    out = []
    for k in keys:
        text = k
        if m is not None and profile:
            c = m.cell(k, profile)
            if c.state == OTHER and c.catalogs:
                text += f" (meets {', '.join(c.catalogs)} instead)"
            elif c.state == NOT_APPLICABLE:
                text += f" ({c.reason})"
        out.append(text)
    return ", ".join(out) if out else "nothing"


def describe_change(m: Matrix, ch: Change, role: str = "") -> str:
    """One generated sentence: "v6.1-deb-claim-fails (fail the claim while mapped;
    claim_policy=fail) removes B5, B6; introduces nothing; ..."."""
    settings = ", ".join(setting_changes(ch.base, ch.profile)) or "no setting"
    head = f"{ch.profile} — {role + ': ' if role else ''}{settings} against {ch.base} —"
    parts = [f"removes {_ids(ch.removes, m, ch.profile)}"]
    if ch.accepts:
        parts.append(f"accepts as by design {_ids(ch.accepts)}")
    parts.append(f"introduces {_ids(ch.introduces)}")
    if ch.resigns:
        parts.append(f"changes the signatures of {_ids(ch.resigns)}")
    if ch.unasked:
        parts.append(f"cannot run {_ids(ch.unasked, m, ch.profile)}")
    if ch.behaves:
        parts.append("changes what the Programs see without a verdict change in "
                     + ", ".join(f"{r} ({first})" for r, first in ch.behaves))
    return f"{head} {'; '.join(parts)}."


def _has(m: Matrix, profile: str) -> list[str]:
    return [r.key for r in m.rows if _own(m.cell(r.key, profile))]


def summaries(m: Matrix, g: Group) -> list[str]:
    """The generated sentences of one group."""
    if not g.summarise:
        return [f"{p}: {resolve(p).description}; finding: {_ids(_has(m, p))}."
                for p in g.profiles]
    if g.baseline is not None:
        out = [f"{g.baseline} — {g.role(g.baseline) or resolve(g.baseline).description} "
               f"— has {_ids(_has(m, g.baseline))}."]
        out += [describe_change(m, compare(m, g.baseline, p), g.role(p))
                for p in g.profiles if p != g.baseline]
        return out
    first = g.profiles[0]
    out = [f"{first} — {resolve(first).description} — has {_ids(_has(m, first))}."]
    for before, after in zip(g.profiles, g.profiles[1:], strict=False):
        out.append(describe_change(m, compare(m, before, after),
                                   resolve(after).description))
    return out


# --- text ---------------------------------------------------------------------------------

GLYPHS = {FINDING: "F", OTHER: "o", BY_DESIGN: "D", CLEAN: ".", NOT_APPLICABLE: "-",
          NOT_RUN: " "}
WORDS = {FINDING: "finding", OTHER: "finding of another entry", BY_DESIGN: "accepted by design",
         CLEAN: "clean", NOT_APPLICABLE: "not applicable", NOT_RUN: "not run"}


def _by_state(m: Matrix, profile: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in m.rows:
        c = m.cell(r.key, profile)
        label = r.key + (f"({c.reason})" if c.reason else "")
        out.setdefault(c.state, []).append(label)
    return out


def text(m: Matrix, *, verbose: bool = False) -> str:
    """What ``iomemfuzz matrix`` prints: per question, each profile's verdicts and the
    generated summary; with ``verbose`` every cell's signatures."""
    width = max(len(p) for p in m.profiles)
    out = [f"iomemfuzz matrix: {len(m.rows)} reproducers (catalog entries and variants) "
           f"on {len(m.profiles)} profiles"]
    for i, g in enumerate(groups(m), start=1):
        out += ["", f"== {i}. {g.title} =="]
        for p in g.profiles:
            states = _by_state(m, p)
            parts = [f"{WORDS[s]}: {' '.join(states[s])}"
                     for s in (FINDING, OTHER, BY_DESIGN, NOT_APPLICABLE) if s in states]
            out.append(f"  {p:<{width}}  " + ("; ".join(parts) or "all clean"))
        out.append("")
        out += [f"  * {s}" for s in summaries(m, g)]
    if verbose:
        out += ["", "== cells =="]
        for r in m.rows:
            out.append(f"{r.key} {r.title} [{r.path} on {r.home}]")
            for p in m.profiles:
                c = m.cell(r.key, p)
                if c.state == NOT_RUN:
                    continue
                detail = ", ".join(c.signatures or c.accepted) or REASONS.get(c.reason, "")
                out.append(f"  {p:<{width}}  {c.state}" + (f": {detail}" if detail else ""))
    if m.left_out:
        out += ["", "not in the matrix: " + ", ".join(f"{i} ({why})" for i, why in m.left_out)]
    return "\n".join(out) + "\n"


# --- Markdown -----------------------------------------------------------------------------


def _code(sig: str) -> str:
    return f"`{sig}`"


def _md_cell(c: Cell, base: Cell | None = None, m: Matrix | None = None) -> str:
    if c.state in (FINDING, OTHER):
        more = f" (+{len(c.signatures) - 1})" if len(c.signatures) > 1 else ""
        word = "**finding**" if c.state == FINDING else f"finding of {', '.join(c.catalogs)}"
        return f"{word} {_code(c.signatures[0])}{more}"
    if c.state == BY_DESIGN:
        return f"by design {_code(c.accepted[0])}"
    if c.state == NOT_APPLICABLE:
        return f"n/a ({c.reason})"
    if c.state == NOT_RUN:
        return ""
    if base is not None and m is not None and base.profile != c.profile:
        changes = outcome_changes(m, c.row, base.profile, c.profile)
        if changes:
            return "clean: " + changes[0].replace("->", "→")
    return "clean"


def _differs(m: Matrix, g: Group, key: str) -> bool:
    """Does ``key``'s row read differently across the group (a row that is n/a on every
    profile of it does not, whatever its lines saw)?"""
    cells = [m.cell(key, p) for p in g.profiles]
    if all(c.state in (NOT_APPLICABLE, NOT_RUN) for c in cells):
        return False
    return len({(c.state, c.signatures, c.accepted, c.outcomes) for c in cells}) > 1


def _question_md(m: Matrix, g: Group, number: int) -> list[str]:
    out = ["", f"### {number}. {g.title}", ""]
    for s in summaries(m, g):
        name, _, rest = s.partition(" ")
        out.append(f"- **{name}** {rest.replace('->', '→')}")
    keys = [r.key for r in m.rows if _differs(m, g, r.key)]
    if g.key == PLANTED[0]:
        keys = [r.key for r in m.rows if r.planted]
    if not keys:
        return [*out, "", "Every reproducer behaves the same on these profiles."]
    heads = [f"{p}<br>{g.role(p)}" if g.role(p) else p for p in g.profiles]
    out += ["", "| | " + " | ".join(heads) + " |", "|---|" + "---|" * len(g.profiles)]
    for key in keys:
        base = m.cell(key, g.baseline) if g.baseline else None
        row = [_md_cell(m.cell(key, p), base, m) for p in g.profiles]
        out.append(f"| [{key}](#{_anchor(key)}) | " + " | ".join(row) + " |")
    same = len(m.rows) - len(keys)
    if same and g.key != PLANTED[0]:
        out += ["", f"The other {same} reproducers behave the same on all of them."]
    return out


def _anchor(key: str) -> str:
    return "row-" + key.lower().replace("′", "-1").replace("″", "-2").replace("‴", "-3")


def _grid_md(m: Matrix) -> list[str]:
    keys = [r.key for r in m.rows]
    out = ["| profile | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for g in groups(m):
        out.append(f"| **{g.title}** |" + " |" * len(keys))
        for p in g.profiles:
            out.append(f"| {p} | " + " | ".join(GLYPHS[m.cell(k, p).state] for k in keys)
                       + " |")
    return out


def _signatures_md(m: Matrix) -> list[str]:
    out = []
    for r in m.rows:
        by: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for p in m.profiles:
            c = m.cell(r.key, p)
            if c.state in (FINDING, OTHER):
                by.setdefault(("found", c.signatures), []).append(p)
            elif c.state == BY_DESIGN:
                by.setdefault(("accepted", c.accepted), []).append(p)
        repro = f"[`{r.path}`](../{r.path})"
        out += ["", f"#### <a id=\"{_anchor(r.key)}\"></a>{r.key}: {r.title}", "",
                f"Reproducer {repro}, own profile `{r.home}`, catalog class `{r.klass}`"
                + (" (a variant of the entry's reproducer)" if r.variant else "") + "."]
        if not by:
            out += ["", "No finding on any profile."]
        for (what, sigs), profiles in by.items():
            out += ["", f"- {what} on {', '.join(profiles)}:"]
            out += [f"  - `{s}`" for s in sigs]
    return out


RULES = f"""\
A cell is the verdict of the row's Program on the column's profile:

| glyph | state | meaning |
|---|---|---|
| `{GLYPHS[FINDING]}` | finding | the run reports violations the profile does not accept \
(the cell's signatures) |
| `{GLYPHS[OTHER]}` | finding of another entry | it does, but every violation names another \
catalog entry: this bug is gone, the route now meets another one |
| `{GLYPHS[BY_DESIGN]}` | accepted by design | nothing reported; the profile accepts what \
happened (its `by_design` list) |
| `{GLYPHS[CLEAN]}` | clean | nothing found, nothing accepted |
| `{GLYPHS[NOT_APPLICABLE]}` | not applicable | the question cannot be asked here (below) |
| (blank) | not run | a planted `test-*` profile the row does not live on |

Not applicable, in the order the rules are applied:

- **{CONFLICT}**: {REASONS[CONFLICT]} (where the profile differs from the default), \
so the column's question cannot be asked of it. The reproducer's other overrides (a boot \
parameter, a config, a `by_design` promise) are applied on every column, and its \
`# machine:` is kept.
- **{CONTRACT}**: {REASONS[CONTRACT]}. Only a finding beats this rule.
- **{MISSING}**: {REASONS[MISSING]}: a line that succeeded on the reproducer's own profile \
gets ENOENT or ENODEV here. A refusal (EPERM under lockdown) is an answer, not an \
absence: such a cell is clean.

Rows are the catalog entries with a reproducer, plus a variant (`B5′`) for a `see_also` \
finding that names the entry and whose verdict differs somewhere. The summaries compare \
each profile of a question with its baseline (the kernel versions: each with the one \
before): *removes* (a finding there, none here), *accepts as by design*, *introduces*, \
*changes the signatures*, *cannot run* (n/a here only), and what the Programs see \
differently without a verdict change (the first line whose outcome differs)."""


def markdown(m: Matrix, *, pictures: tuple[str, str] = ("matrix.svg", "matrix.png"),
             examples: Iterable[tuple[str, str]] = ()) -> str:
    """docs/MATRIX.md; ``examples`` are (file, caption) of other pictures in docs/."""
    svg, png = pictures
    out = [
        "# The bug × profile matrix",
        "",
        "<!-- Generated by `iomemfuzz matrix --write-docs` (also run by "
        "`python tools/update_docs.py`); do not edit. A test fails when it is stale. -->",
        "",
        f"Every reproducer of the [bug catalog](CATALOG.md) ({len(m.rows)} Programs) run "
        f"on every profile ({len(m.profiles)}; `iomemfuzz profiles`), grouped by the "
        "question of the 2021 LKML thread each group answers. `iomemfuzz matrix` prints "
        "it (`--json`, `--markdown`, `--picture FILE.svg|png`); the data is in "
        "[matrix.json](matrix.json).",
        "",
        f"[![The matrix as a heat map: profiles down, reproducers across]({svg})]({png})",
        "",
    ]
    shown = [f"[{caption}]({name})" for name, caption in examples]
    if shown:
        out += ["More pictures: " + "; ".join(shown) + ".", ""]
    out += ["## The answers"]
    for i, g in enumerate(groups(m), start=1):
        out += _question_md(m, g, i)
    out += ["", "## The whole matrix", "",
            " ".join(f"`{GLYPHS[s] if GLYPHS[s] != ' ' else '(blank)'}` {WORDS[s]};"
                     for s in GLYPHS).rstrip(";") + ". Rules below.", ""]
    out += _grid_md(m)
    out += ["", "## Signatures by row"]
    out += _signatures_md(m)
    if m.left_out:
        out += ["", "Not in the matrix: "
                + ", ".join(f"[{i}](CATALOG.md#{i.lower()})" for i, _ in m.left_out)
                + " (no reproducer in the corpus)."]
    out += ["", "## How a cell is decided", "", RULES]
    return "\n".join(out) + "\n"


def as_json(m: Matrix) -> dict[str, Any]:
    """The matrix, its groups and their summaries as one JSON document."""
    doc = m.to_dict()
    gs = []
    for g in groups(m):
        pairs = ([(g.baseline, p) for p in g.profiles if p != g.baseline] if g.baseline
                 else list(zip(g.profiles, g.profiles[1:], strict=False)))
        gs.append({"key": g.key, "title": g.title, "profiles": list(g.profiles),
                   "baseline": g.baseline, "roles": dict(g.roles),
                   "summary": summaries(m, g),
                   "changes": [compare(m, a, b).to_dict() for a, b in pairs]
                   if g.summarise else []})
    doc["groups"] = gs
    doc["states"] = {s: WORDS[s] for s in GLYPHS}
    doc["reasons"] = dict(REASONS)
    return doc


def json_text(m: Matrix) -> str:
    return json.dumps(as_json(m), indent=1, ensure_ascii=False) + "\n"


def heatmap_data(m: Matrix) -> dict[str, Any]:
    """What the heat map is drawn from (fuzz/pictures/heatmap.py): the rows' keys and
    titles, and per group each profile's states and signature counts."""
    return {
        "columns": [r.key for r in m.rows],
        "titles": {r.key: r.title for r in m.rows},
        "groups": [{"title": g.title, "rows": [
            {"profile": p, "role": g.role(p),
             "states": [m.cell(r.key, p).state for r in m.rows],
             "counts": [len(m.cell(r.key, p).signatures or m.cell(r.key, p).accepted)
                        for r in m.rows]}
            for p in g.profiles]} for g in groups(m)],
    }
