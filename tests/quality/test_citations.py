"""Every citation in the repository resolves inside the repository.

* A bug-catalog id (``B`` or ``BD`` + number, optional letter) names an entry or a group
  of fuzz/catalog.toml (BD: discovered by iomemfuzz).
* A test-vector id (``D`` + number) is a row of the table in docs/SEMANTICS.md §8.3.
* A section number (``§`` + number) is a numbered heading of docs/SEMANTICS.md.
* Every corpus file's ``# catalog:`` header names existing entries.
* Nothing refers to files outside the checkout: no path into a shared directory, no
  absolute path of the machine the project was written on, no ``../`` that climbs out of
  the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from iomemfuzz.fuzz.catalog import load

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("model", "fuzz", "tests", "corpus", "tools", "docs", "README.md")
SKIP_DIRS = {"__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache"}

BUG = re.compile(r"\bBD?[0-9]+[a-z]?\b")
VECTOR = re.compile(r"\bD[0-9]+\b")
SECTION = re.compile("\u00a7 ?([0-9]+(?:\\.[0-9]+)?)")
HEADING = re.compile(r"^#{2,3} ([0-9]+(?:\.[0-9]+)?)\.? ", re.M)
VECTOR_ROW = re.compile(r"^\| (D[0-9]+) \|", re.M)

# Built from pieces so this file does not trip its own check.
OUTSIDE = [
    re.compile("shared" + "/"),
    re.compile(r"(?<![\w$}])" + "/wo" + "rk/"),  # $ROOT/work/ is the checkout's own work dir
]
CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+)")


def _text_files(paths) -> list[Path]:
    out: list[Path] = []
    for name in paths:
        top = ROOT / name
        candidates = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in candidates:
            if not path.is_file() or SKIP_DIRS & set(path.relative_to(ROOT).parts):
                continue
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # byte seeds and other binary data
            out.append(path)
    return out


def _repository_files() -> list[Path]:
    """Every tracked file (the checkout as a fresh clone has it)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        return _text_files([p.name for p in ROOT.iterdir()
                            if p.name not in {".git", ".venv", "work"}])
    files = []
    for name in filter(None, listed):
        path = ROOT / name
        if path.is_file():
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


SEMANTICS = (ROOT / "docs" / "SEMANTICS.md").read_text(encoding="utf-8")
SECTIONS = set(HEADING.findall(SEMANTICS))
VECTORS = set(VECTOR_ROW.findall(SEMANTICS))
CATALOG = load()
FILES = _text_files(SCANNED)


def _where(path: Path, text: str, index: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, index) + 1}"


def test_semantics_has_the_sections_and_vectors_the_project_relies_on():
    assert {"0", "0.2", "2.13", "4.7", "5.6", "7", "8.3"} <= SECTIONS
    assert {f"D{i}" for i in range(1, 26)} == VECTORS


def test_catalog_ids_and_vector_ids_cannot_be_confused():
    """A catalog id never reads as a vector id, nor the other way round."""
    for ident in CATALOG.ids:
        assert BUG.fullmatch(ident) and not VECTOR.search(ident), ident
    for ident in VECTORS:
        assert not BUG.search(ident) and ident not in CATALOG, ident


def test_every_cited_catalog_id_resolves():
    bad = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        bad += [f"{_where(path, text, m.start())}: {m.group()}"
                for m in BUG.finditer(text) if m.group() not in CATALOG]
    assert not bad, "catalog ids that are not in fuzz/catalog.toml:\n" + "\n".join(bad)


def test_every_cited_vector_resolves():
    bad = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        bad += [f"{_where(path, text, m.start())}: {m.group()}"
                for m in VECTOR.finditer(text) if m.group() not in VECTORS]
    assert not bad, "D ids without a row in docs/SEMANTICS.md §8.3:\n" + "\n".join(bad)


def test_every_cited_section_resolves():
    bad = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        bad += [f"{_where(path, text, m.start())}: {m.group()}"
                for m in SECTION.finditer(text) if m.group(1) not in SECTIONS]
    assert not bad, "sections without a heading in docs/SEMANTICS.md:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", sorted((ROOT / "corpus").rglob("*.prog")),
                         ids=lambda p: str(p.relative_to(ROOT / "corpus")))
def test_corpus_catalog_headers_name_existing_entries(path):
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := re.match(r"#\s*catalog:\s*(.*)", line):
            ids = [x.strip() for x in m.group(1).split(",")]
            assert ids and all(ids), f"empty id in {line!r}"
            missing = [i for i in ids if i not in CATALOG]
            assert not missing, f"# catalog: names unknown entries {missing}"


def test_nothing_refers_to_files_outside_the_repository():
    bad = []
    for path in _repository_files():
        text = path.read_text(encoding="utf-8")
        for pattern in OUTSIDE:
            bad += [f"{_where(path, text, m.start())}: {m.group()!r}"
                    for m in pattern.finditer(text)]
        depth = len(path.relative_to(ROOT).parts) - 1
        bad += [f"{_where(path, text, m.start())}: climbs out with {m.group(1)!r}"
                for m in CLIMB.finditer(text) if m.group(1).count("../") > depth]
    assert not bad, "references outside the checkout:\n" + "\n".join(bad)
