"""Which hypothesis example database a run uses, chosen by one environment variable.

Hypothesis keeps every failing example it found (and the examples that reached new
behaviour) in an *example database* and replays them first on the next run; shared between
machines, one machine's finding is every machine's regression test. Hypothesis provides
the pieces; this module only picks them from ``IOMEMFUZZ_HYPOTHESIS_DB``, a comma-separated
list of sources:

==============================  ===========================================================
``DIR``                         read and write ``DirectoryBasedExampleDatabase(DIR)``
``ro:DIR``                      read only (``ReadOnlyDatabase``): replay, never write
``github:OWNER/REPO[/NAME]``     the artefact NAME (default ``hypothesis-example-db``) of
                                the repository's latest GitHub Actions run, read only
                                (``GitHubArtifactDatabase``; token from ``GITHUB_TOKEN``)
``none``                        no database
==============================  ===========================================================

One source is used as is; several are combined with ``MultiplexedDatabase`` (reads see
all of them, writes go to the writable ones). Unset, the database is
``.hypothesis/examples`` at the repository root. A plain ``DIR`` means what
``IOMEMFUZZ_HYPOTHESIS_DB`` always meant, so existing set-ups keep working.
``docs/SCALE-OUT.md`` shows the set-ups: shared storage for a fleet, a CI job that
replays the nightly database without writing to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    GitHubArtifactDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

ENV_DB = "IOMEMFUZZ_HYPOTHESIS_DB"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_PATH = REPO / ".hypothesis" / "examples"
GITHUB_ARTIFACT = "hypothesis-example-db"
READ_ONLY = "ro:"
GITHUB = "github:"
NONE = "none"


class DatabaseSpecError(ValueError):
    """``IOMEMFUZZ_HYPOTHESIS_DB`` names a source this module does not know."""


def source(item: str) -> ExampleDatabase:
    """One source of the list (see the module docstring)."""
    if item.startswith(READ_ONLY):
        path = item[len(READ_ONLY):]
        if not path:
            raise DatabaseSpecError(f"{ENV_DB}: '{item}' names no directory")
        return ReadOnlyDatabase(DirectoryBasedExampleDatabase(path))
    if item.startswith(GITHUB):
        parts = item[len(GITHUB):].split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise DatabaseSpecError(f"{ENV_DB}: '{item}' is not github:OWNER/REPO[/NAME]")
        name = parts[2] if len(parts) == 3 else GITHUB_ARTIFACT
        # Hypothesis only reads artefacts; it insists on the read-only wrapper.
        return ReadOnlyDatabase(GitHubArtifactDatabase(parts[0], parts[1], artifact_name=name))
    return DirectoryBasedExampleDatabase(item)


def example_database(spec: str | None = None) -> ExampleDatabase | None:
    """The database ``spec`` (default: ``$IOMEMFUZZ_HYPOTHESIS_DB``) describes; None for
    ``none``. Building it touches neither disk nor network: the sources open lazily."""
    if spec is None:
        spec = os.environ.get(ENV_DB, "")
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        return DirectoryBasedExampleDatabase(str(DEFAULT_PATH))
    if items == [NONE]:
        return None
    if NONE in items:
        raise DatabaseSpecError(f"{ENV_DB}: '{NONE}' cannot be combined with other sources")
    databases = [source(s) for s in items]
    return databases[0] if len(databases) == 1 else MultiplexedDatabase(*databases)
