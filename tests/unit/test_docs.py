"""Documentation generated from tables stays in sync with the tables."""

from __future__ import annotations

from pathlib import Path

from iomemfuzz.fuzz.ops import describe_ops

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- ops:begin -->\n", "<!-- ops:end -->"


def test_corpus_readme_operation_list_matches_the_table():
    text = (ROOT / "corpus" / "README.md").read_text()
    assert BEGIN in text and END in text
    listed = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert listed == describe_ops(), (
        "corpus/README.md is out of date: run `python tools/update_docs.py`")


def test_catalog_md_matches_the_data():
    from iomemfuzz.fuzz.catalog import load, markdown

    text = (ROOT / "docs" / "CATALOG.md").read_text(encoding="utf-8")
    assert text == markdown(load()), (
        "docs/CATALOG.md is out of date: run `python tools/update_docs.py`")


def test_findings_md_is_the_triage_table_of_the_corpus():
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_docs", ROOT / "tools" / "update_docs.py")
    update_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update_docs)
    text = (ROOT / "docs" / "FINDINGS.md").read_text(encoding="utf-8")
    assert text == update_docs.findings(), (
        "docs/FINDINGS.md is out of date: run `python tools/update_docs.py`")
