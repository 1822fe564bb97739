"""IOMEMFUZZ_HYPOTHESIS_DB picks the hypothesis example database: a directory (shared
storage), read-only sources, a GitHub Actions artefact, several at once, or none."""

from __future__ import annotations

import pytest
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    GitHubArtifactDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)
from iomemfuzz.fuzz.exampledb import (
    DEFAULT_PATH,
    ENV_DB,
    DatabaseSpecError,
    example_database,
)


def test_unset_is_the_repository_directory(monkeypatch):
    monkeypatch.delenv(ENV_DB, raising=False)
    db = example_database()
    assert isinstance(db, DirectoryBasedExampleDatabase)
    assert db.path == DEFAULT_PATH


def test_a_plain_directory_is_read_and_written(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DB, str(tmp_path / "shared"))
    db = example_database()
    assert isinstance(db, DirectoryBasedExampleDatabase)
    db.save(b"key", b"value")
    # Another machine mounting the same directory sees it.
    assert list(DirectoryBasedExampleDatabase(tmp_path / "shared").fetch(b"key")) == [b"value"]


def test_ci_replays_the_shared_directory_but_writes_only_its_own(tmp_path):
    shared = DirectoryBasedExampleDatabase(tmp_path / "shared")
    shared.save(b"key", b"from-nightly")
    db = example_database(f"{tmp_path / 'local'},ro:{tmp_path / 'shared'}")
    assert isinstance(db, MultiplexedDatabase)
    assert set(db.fetch(b"key")) == {b"from-nightly"}
    db.save(b"key", b"from-ci")
    assert set(shared.fetch(b"key")) == {b"from-nightly"}
    assert set(DirectoryBasedExampleDatabase(tmp_path / "local").fetch(b"key")) == {b"from-ci"}


def test_github_artifacts_are_read_only_and_opened_lazily():
    db = example_database("github:owner/repo/nightly-db")
    assert isinstance(db, ReadOnlyDatabase)
    inner = db._wrapped
    assert isinstance(inner, GitHubArtifactDatabase)
    assert (inner.owner, inner.repo, inner.artifact_name) == ("owner", "repo", "nightly-db")
    default = example_database("github:owner/repo")._wrapped
    assert default.artifact_name == "hypothesis-example-db"


def test_none_disables_the_database():
    assert example_database("none") is None


@pytest.mark.parametrize("spec", ["ro:", "github:owner", "github:/repo", "none,/tmp/x"])
def test_malformed_specs_are_refused(spec):
    with pytest.raises(DatabaseSpecError):
        example_database(spec)
