"""Hypothesis strategies for operations and Programs, built from the operation table.

``ops()`` draws one operation whose handle references point at lines bound earlier;
``programs()`` draws whole Programs, optionally with headers, notes, per-line comments,
expected outcomes and a trailer, constrained so that the canonical text round-trips:

* comment text is printable ASCII without trailing whitespace (``format`` writes
  ``# text``; ``parse`` strips the line);
* no comment looks like a ``# key: value`` header line (in the header block it would be
  read back as a header), so such text gets a ``note`` prefix;
* header values are non-empty and have no surrounding whitespace;
* a trailer only when there are lines (otherwise it would read back as header notes).

Values lean towards the decoder's interesting tables (page and BAR edges, the default
machine's regions) so that drawn Programs reach the same states the fuzzers do; with
``decodable=True`` every drawn Program is inside the domain of
:func:`iomemfuzz.fuzz.encode.encode`.
"""

from __future__ import annotations

from functools import cache

from hypothesis import strategies as st
from iomemfuzz.fuzz import decode, decode_tables
from iomemfuzz.fuzz.ops import Arg, Kind, Op, ordered_ops
from iomemfuzz.fuzz.program import HEADER_KEYS, Line, Program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError, parse_program
from iomemfuzz.model.profile import PROFILES

U64_MAX = (1 << 64) - 1
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
# Outcome labels an operation line may carry (any of these parses).
EXPECT_LABELS = ("ok", "EBUSY", "EINVAL", "EBADF", "ENOMEM", "SIGBUS", "blocked",
                 "= 0x0", "= 0x1000", "= MIXED", "= true", "= false", "= ram")
SIGNATURES = ("busy-consistency/release-without-claim", "busy-consistency/busy-without-claim",
              "kernel-sanity/double-free-res-attr", "mapping-survival/claimed-byte-reached")


@cache
def _numbers(a: Arg) -> st.SearchStrategy[int]:
    """Interesting values of the field's kind first, then anything in its bounds."""
    table = decode_tables.tables().get(a.kind, ())
    in_range = sorted({v for v in table if a.lo <= v <= a.hi} | {a.simplest})
    edges = st.sampled_from(in_range) if in_range else st.nothing()
    anything = st.integers(a.lo, a.hi)
    if a.kind is Kind.INT:
        small = st.integers(a.lo, min(a.hi, a.lo + 16))
        return st.one_of(small, edges, anything)
    return st.one_of(edges, anything)


@cache
def names(decodable: bool = False) -> st.SearchStrategy[str]:
    """Resource names: the decoder's table, or short strings Program text can quote."""
    table = st.sampled_from(decode_tables.NAMES)
    if decodable:
        return st.one_of(table, st.text(decode_tables.NAME_ALPHABET,
                                        max_size=decode_tables.MAX_NAME))
    # Any printable ASCII (the formatter escapes quotes and backslashes).
    return st.one_of(table, st.text(_PRINTABLE, max_size=20))


@cache
def values(a: Arg, handles: int, *, decodable: bool = False) -> st.SearchStrategy[object]:
    """A value for field ``a`` on a line after ``handles`` bound handles."""
    kind = a.kind
    bound = st.integers(0, handles - 1) if handles else st.nothing()
    if kind in (Kind.ADDR, Kind.SIZE, Kind.INT, Kind.FLAGS):
        return _numbers(a)
    if kind is Kind.HANDLE:
        return st.one_of(bound, st.none()) if handles else st.none()
    if kind is Kind.NODE:
        roots = st.sampled_from((a.simplest, *(c for c in a.choices if c != a.simplest)))
        return st.one_of(roots, bound) if handles else roots
    if kind is Kind.CHOICE:
        return st.sampled_from((a.simplest, *(c for c in a.choices if c != a.simplest)))
    if kind is Kind.NAME:
        if a.choices:  # the field's own suggestions (e.g. preemption points)
            return st.one_of(st.sampled_from(a.choices), names(decodable))
        return names(decodable)
    return st.just(a.simplest)


def op_classes(families: tuple[str, ...] | None = None,
               names_: tuple[str, ...] | None = None) -> tuple[type[Op], ...]:
    """The operation classes to draw from (all by default)."""
    classes = ordered_ops()
    if families is not None:
        classes = tuple(c for c in classes if c.FAMILY in families)
    if names_ is not None:
        classes = tuple(c for c in classes if c.NAME in names_)
    return classes


@st.composite
def _op_of(draw: st.DrawFn, cls: type[Op], handles: int, decodable: bool) -> Op:
    kwargs = {name: draw(values(a, handles, decodable=decodable)) for name, a in cls.args()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError):
        # Mirrors the decoder: a combination the operation rejects becomes its simplest form.
        return cls()


@cache
def ops_of(cls: type[Op], handles: int = 0, *, decodable: bool = False
           ) -> st.SearchStrategy[Op]:
    """One ``cls`` operation on a line after ``handles`` bound handles."""
    return _op_of(cls, handles, decodable)


def ops(handles: int = 0, *, classes: tuple[type[Op], ...] | None = None,
        decodable: bool = False) -> st.SearchStrategy[Op]:
    """One operation of any registered kind (or of ``classes``)."""
    pool = classes if classes is not None else op_classes()
    return st.sampled_from(pool).flatmap(lambda cls: ops_of(cls, handles, decodable=decodable))


def _looks_like_header(text: str) -> bool:
    if ":" not in text:
        return False
    try:
        return bool(parse_program(f"# {text}\n").headers)
    except ProgramSyntaxError:  # a header key with no value: header-like all the same
        return True


@cache
def comment_texts() -> st.SearchStrategy[str]:
    """Comment text that survives format -> parse unchanged, in any position."""
    def fix(text: str) -> str:
        text = text.rstrip()
        return f"note {text}" if _looks_like_header(text) else text

    return st.text(_PRINTABLE, max_size=30).map(fix)


@cache
def _header_value() -> st.SearchStrategy[str]:
    return st.text(_PRINTABLE, min_size=1, max_size=30).map(str.strip).filter(bool)


@cache
def _header_parts() -> tuple[st.SearchStrategy, ...]:
    profile_names = sorted(PROFILES)
    verdicts = st.one_of(st.just("clean"),
                         st.sampled_from(SIGNATURES).map(lambda s: f"finding {s}"))
    return (st.sampled_from(profile_names),
            st.sampled_from(("B16", "B1, B7", "B5", "B29")),
            verdicts, st.lists(verdicts, max_size=2),
            st.lists(st.sampled_from(profile_names), max_size=2, unique=True))


@st.composite
def headers(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    """Header fields in canonical order (profile, catalog, expect..., expect@..., replay)."""
    profile, catalog, verdict, verdicts, others = _header_parts()
    out: list[tuple[str, str]] = []
    if draw(st.booleans()):
        out.append(("profile", draw(profile)))
    if draw(st.booleans()):
        out.append(("catalog", draw(catalog)))
    out += [("expect", v) for v in draw(verdicts)]
    out += [(f"expect@{p}", draw(verdict)) for p in sorted(draw(others))]
    if draw(st.booleans()):
        out.append(("replay", draw(_header_value())))
    assert all(k in HEADER_KEYS or k.startswith("expect@") for k, _ in out)
    return tuple(out)


@st.composite
def programs(draw: st.DrawFn, *, min_lines: int = 0, max_lines: int = 12,
             metadata: bool = True, decodable: bool = False,
             classes: tuple[type[Op], ...] | None = None) -> Program:
    """A Program; ``metadata=False`` (implied by ``decodable``) draws bare operations."""
    if decodable:
        metadata = False
        max_lines = min(max_lines, decode.MAX_OPS)
    n = draw(st.integers(min_lines, max_lines))
    pool = classes if classes is not None else op_classes()
    pick = _sampled(pool)
    lines: list[Line] = []
    handles = 0
    for _ in range(n):
        cls = draw(pick)
        o = draw(ops_of(cls, handles, decodable=decodable))
        handles += cls.BINDS
        if metadata:
            comments = tuple(draw(_comment_lists()))
            expect = draw(_expects())
            lines.append(Line(o, expect, comments))
        else:
            lines.append(Line(o))
    if not metadata:
        return Program(tuple(lines))
    hdrs = draw(headers())
    notes = tuple(draw(_comment_lists()))
    trailer = tuple(draw(_comment_lists())) if lines else ()
    return Program(tuple(lines), hdrs, notes, trailer)


# Strategies are built once: hypothesis validates each new strategy object, which cost
# more than drawing from it.
@cache
def _sampled(pool: tuple[type[Op], ...]) -> st.SearchStrategy[type[Op]]:
    return st.sampled_from(pool)


@cache
def _comment_lists() -> st.SearchStrategy[list[str]]:
    return st.lists(comment_texts(), max_size=2)


@cache
def _expects() -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(EXPECT_LABELS))


@st.composite
def state_programs(draw: st.DrawFn, profile: object = None, *, max_lines: int = 6
                   ) -> Program:
    """Programs drawn line by line from the *state* each prefix reaches (typed, state-
    aware generation: ``iomemfuzz explore``'s domain, with every anchor): a consumer only
    with a producer's handle, addresses from the prefix and the state's anchors (legacy
    window, free MMIO page, device BAR, RAM), a name field sharing the device a line
    before it named. Each line runs its prefix once, so Programs stay short."""
    import random

    from iomemfuzz.fuzz import explore
    from iomemfuzz.model.profile import resolve

    prof = resolve(profile)  # type: ignore[arg-type]
    domain = explore.Domain(values=4, recent=2, sizes=(0x1000, 0x80))
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, max_lines))):
        ex = explore.prefix_execution(tuple(ops), prof, Program())
        new = explore.draw(ex, tuple(ops), domain,
                           random.Random(draw(st.integers(0, (1 << 32) - 1))))
        if new is None:
            break
        ops.append(new)
    return Program(tuple(Line(o) for o in ops))
