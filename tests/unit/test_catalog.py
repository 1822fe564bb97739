"""fuzz/catalog.py and fuzz/catalog.toml: the catalog loads, every entry is complete and
points at a reproducer that exists and names it, malformed data is refused with a message
that says where, and `iomemfuzz catalog` prints entries as text and JSON."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from iomemfuzz.fuzz import catalog as cat
from iomemfuzz.fuzz.cli import main
from iomemfuzz.model.profile import PROFILES

ROOT = Path(__file__).resolve().parents[2]
CATALOG = cat.load()
UNKNOWN = "B" + "99"  # built, so the citation check does not read it as a citation

GOOD = '''
[groups]
B29 = "tree edges"

[[entry]]
id = "B16"
title = "t"
class = "driver-misuse"
mechanism = "m"
functions = ["__release_region"]
versions = "all"
reproducer = ""

[[entry]]
id = "B29a"
title = "t"
class = "driver-misuse"
mechanism = "m"
functions = ["adjust_resource"]
versions = "all"
reproducer = "corpus/x.prog"

[[entry.commits]]
id = "aa382ffa705b"
title = "c"
role = "fixed"
'''

# B16 as its reproducer shows it (it needs the misuse profile: a driver breaking its contract).
RELEASE = "busy-consistency/release-without-claim/__release_region/wrong-size"


def _header(path: Path) -> tuple[list[str], list[str], int]:
    """(catalog ids, main-profile expectations, number of operations) of a corpus file."""
    ids: list[str] = []
    expects: list[str] = []
    ops = 0
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if m := re.match(r"#\s*catalog:\s*(.*)", line):
            ids += [x.strip() for x in m.group(1).split(",") if x.strip()]
        elif m := re.match(r"#\s*expect:\s*(.*)", line):
            expects.append(m.group(1).strip())
        elif line and not line.startswith("#"):
            ops += 1
    return ids, expects, ops


CORPUS = {str(p.relative_to(ROOT)): _header(p) for p in sorted((ROOT / "corpus").rglob("*.prog"))}


def _naming(ident: str) -> dict[str, tuple[list[str], list[str], int]]:
    return {path: h for path, h in CORPUS.items() if ident in h[0]}


# --- the shipped catalog ----------------------------------------------------------------------


def test_the_shipped_catalog_loads_with_every_entry_complete():
    assert len(CATALOG) >= 30 and CATALOG.ids[0] == "B1"
    for e in CATALOG:
        assert e.title and e.mechanism and e.versions and e.functions, e.id
        assert e.klass in cat.CLASSES
    assert set(CATALOG.groups) == {"B11", "B29"}
    assert [e.id for e in CATALOG.resolve("B29")] == [f"B29{c}" for c in "abcdefgh"]


@pytest.mark.parametrize("entry", CATALOG.entries, ids=CATALOG.ids)
def test_reproducer_and_see_also_exist_and_name_the_entry(entry):
    for path in ((entry.reproducer,) if entry.reproducer else ()) + entry.see_also:
        assert (ROOT / path).is_file(), f"{entry.id}: {path} does not exist"
    if entry.reproducer:
        assert entry.id in CORPUS[entry.reproducer][0] or (
            entry.group and entry.group in CORPUS[entry.reproducer][0]), (
            f"{entry.id}: {entry.reproducer} does not name it in its # catalog: header")
    else:
        assert not _naming(entry.id), (
            f"{entry.id} has no reproducer, but {sorted(_naming(entry.id))} name it")


@pytest.mark.parametrize("entry", [e for e in CATALOG if e.reproducer],
                         ids=[e.id for e in CATALOG if e.reproducer])
def test_reproducer_is_the_shortest_file_that_shows_the_entry(entry):
    """Among the corpus files naming the entry, those that report a finding on their own
    profile are preferred; the reproducer is the shortest of them. A shorter file is
    allowed only when the entry says why (reproducer_note) and lists it in see_also."""
    naming = _naming(entry.id)
    finders = {p: h for p, h in naming.items() if any(x.startswith("finding") for x in h[1])}
    pool = finders or naming
    assert entry.reproducer in pool, f"{entry.id}: {entry.reproducer} reports no finding"
    length = pool[entry.reproducer][2]
    shorter = sorted(p for p, h in pool.items() if h[2] < length)
    if shorter:
        assert entry.reproducer_note, f"{entry.id}: shorter reproducers exist: {shorter}"
        assert set(shorter) <= set(entry.see_also), (
            f"{entry.id}: list the shorter files in see_also: {shorter}")


def test_discovered_entries_follow_the_original_ones_and_their_violations_name_them():
    """BD entries (found by iomemfuzz) come after the B entries, numbered from 1 without
    gaps, and on its own profile each reproducer reports a violation the oracles tag with
    the entry, so the matrix, the triage table and the minimizer's headers attribute it;
    the entry's class is the one the executor computes for that violation from what the
    reproducer does."""
    from iomemfuzz.fuzz.executor import run
    from iomemfuzz.fuzz.program_file import read_program

    ids = list(CATALOG.ids)
    found = [i for i in ids if i.startswith("BD")]
    assert found == [f"BD{n}" for n in range(1, len(found) + 1)]
    assert ids[-len(found):] == found
    for ident in found:
        program = read_program(str(ROOT / CATALOG.get(ident).reproducer))
        trace = run(program, program.profile)
        classes = {v.cls for v in trace.violations if v.catalog == ident}
        assert classes == {CATALOG.get(ident).klass}, (ident, classes)


def test_profiles_accept_only_catalogued_entries_by_design():
    for name, profile in PROFILES.items():
        for ident in profile.by_design:
            if re.fullmatch(r"BD?[0-9]+[a-z]?", ident):
                assert ident in CATALOG, f"profile {name}: by_design {ident} is not catalogued"


def test_lookup():
    assert CATALOG.get("B16").klass == "driver-misuse"
    assert CATALOG.get("bd1").id == "BD1" and CATALOG.get("BD1").group is None
    assert CATALOG.get(" b29c ").id == "B29c" and CATALOG.resolve("b11")[0].id == "B11a"
    assert "B16" in CATALOG and "B29" in CATALOG and UNKNOWN not in CATALOG
    assert CATALOG.get("B29c").group == "B29" and CATALOG.get("B16").group is None
    with pytest.raises(cat.CatalogError, match="group"):
        CATALOG.get("B29")
    with pytest.raises(cat.CatalogError, match="no catalog entry"):
        CATALOG.resolve(UNKNOWN)


def test_replaying_a_reproducer_finds_its_signature_without_storing_it():
    replay = cat.replay_reproducer(CATALOG.get("B16"))
    assert replay is not None and not replay.error
    assert replay.profile == "v6.1-deb-misuse"
    assert RELEASE in replay.signatures
    assert cat.replay_reproducer(CATALOG.get("B20")) is None
    # Signatures change with the oracles; the catalog never spells one out.
    oracle = (r"(busy-consistency|mapping-survival|duplicate-attributes|kernel-sanity"
              r"|resource-file)/")
    assert not re.search(oracle, cat.PATH.read_text(encoding="utf-8"))


def test_replay_of_a_missing_file_is_reported_not_raised(tmp_path):
    replay = cat.replay_reproducer(CATALOG.get("B16"), root=tmp_path)
    assert replay is not None and replay.error and "not replayed" in replay.describe()


# --- malformed catalogs -----------------------------------------------------------------------


def test_a_minimal_catalog_parses():
    c = cat.parse(GOOD, "good.toml")
    assert c.ids == ("B16", "B29a")
    assert c.get("B29a").commits[0].role == "fixed"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('class = "driver-misuse"\nmechanism', 'class = "oops"\nmechanism', "class 'oops'"),
    ('versions = "all"\nreproducer = ""', 'reproducer = ""', "missing field"),
    ('reproducer = ""', 'reproducer = ""\ncolour = "red"', "unknown field"),
    ('id = "B16"', 'id = "bug16"', "id must look like"),
    # D<n> are the test vectors of docs/SEMANTICS.md; discovered entries are BD<n>.
    ('id = "B16"', 'id = "D16"', "id must look like"),
    ('id = "B29a"', 'id = "B16"', "appears twice"),
    ('B29 = "tree edges"', '', "no title in [groups]"),
    ('id = "aa382ffa705b"', 'id = "HEAD~1"', "not 12-40 lowercase hex"),
    ('role = "fixed"', 'role = "blamed"', "role 'blamed'"),
    ('reproducer = "corpus/x.prog"', 'reproducer = "/etc/passwd"', "not a corpus/"),
    ('reproducer = "corpus/x.prog"', 'reproducer = "corpus/../x.prog"', "not a corpus/"),
    ('functions = ["adjust_resource"]', 'functions = "adjust_resource"', "must be a list"),
    ('functions = ["adjust_resource"]', 'functions = [1]', "list of non-empty strings"),
    ('title = "t"\nclass = "driver-misuse"\nmechanism = "m"\nfunctions = ["__release',
     'title = "t"\nclass = "driver-misuse"\nmechanism = " "\nfunctions = ["__release',
     "empty mechanism"),
    ('[groups]', '[groups]\nB11 = "nobody"', "group B11 has no entries"),
    ('[groups]', 'extra = 1\n[groups]', "unknown top-level"),
    ('title = "c"', 'title = "c', "good.toml"),  # TOML syntax error, named by file
])
def test_malformed_catalogs_are_refused_with_the_place(old, new, message):
    assert old in GOOD
    with pytest.raises(cat.CatalogError) as info:
        cat.parse(GOOD.replace(old, new, 1), "good.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("good.toml:")


def test_load_reports_an_unreadable_file(tmp_path):
    with pytest.raises(cat.CatalogError, match=r"missing\.toml"):
        cat.load(tmp_path / "missing.toml")


# --- the command ------------------------------------------------------------------------------


def test_iomemfuzz_catalog_entry(capsys):
    assert main(["catalog", "B16"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("B16  Releasing a region")
    assert "driver-misuse" in out and "b16-wrong-size-release-keeps-claim.prog" in out
    assert "replayed:    on v6.1-deb-misuse:" in out and RELEASE in out
    assert main(["catalog", "b16"]) == 0 and capsys.readouterr().out == out


def test_iomemfuzz_catalog_list_and_group(capsys):
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^{i}\s", out, re.M) for i in CATALOG.ids)
    assert main(["catalog", "B11"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("B11  ") and "B11a  " in out and "B11c  " in out


def test_iomemfuzz_catalog_json(capsys):
    assert main(["catalog", "B16", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == "B16" and doc["class"] == "driver-misuse"
    assert RELEASE in doc["replay"]["signatures"]
    assert main(["catalog", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in doc["entries"]] == list(CATALOG.ids)
    assert main(["catalog", "B29", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["group"] == "B29" and len(doc["entries"]) == 8


def test_iomemfuzz_catalog_unknown_id_exits_2():
    out, err = io.StringIO(), io.StringIO()
    assert cat.show(UNKNOWN, out=out, err=err) == 2
    assert out.getvalue() == "" and "no catalog entry" in err.getvalue()
    assert "B16" in err.getvalue()
