"""The hypothesis state machine: one rule per operation, every oracle after every step.

``TestProgramMachine`` runs on the default profile and fails on any violation whose
signature the corpus does not record for it yet (corpus/findings/<profile>/ and the
``expect: finding`` lines of the seeds): a new kind of bug, shown as Program text. Bounded
by the ``ci`` settings profile; ``IOMEMFUZZ_HYPOTHESIS_PROFILE=nightly`` runs it long.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)
from hypothesis.stateful import run_state_machine_as_test
from iomemfuzz.fuzz.exampledb import DEFAULT_PATH, ENV_DB
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.ops.tree import ReleaseRegion, RequestRegion
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.stateful import (
    CORPUS,
    ENV_PROFILE,
    expected_findings,
    machine_class,
    machine_settings,
    register_settings,
)

# A release nobody holds needs a caller that breaks its contract: the misuse profile.
MISUSE = "v6.1-deb-misuse"
RELEASE = "busy-consistency/release-without-claim/__release_region/never-requested"

TestProgramMachine = machine_class().TestCase
TestProgramMachine.settings = machine_settings()


def _failure(machine, **overrides) -> AssertionError:
    options = {"max_examples": 300, "database": None, "derandomize": True,
               "stateful_step_count": 10, "deadline": None}
    options.update(overrides)
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(machine, settings=settings(**options))
    return info.value


def test_a_failure_carries_replayable_program_text():
    machine = machine_class(MISUSE, known=frozenset(), classes=(RequestRegion, ReleaseRegion))
    error = _failure(machine)
    header, _, text = str(error).partition("\n")
    assert header.startswith("finding ")
    sig = header.split()[1].rstrip(":")
    program = parse_program(text)
    assert program.profile == MISUSE
    assert sig in run(program).signatures
    # Shrunk by hypothesis: a release that matches no claim is one line.
    assert len(program.lines) == 1


def test_failures_can_be_written_to_a_corpus(tmp_path):
    machine = machine_class(MISUSE, known=frozenset(), classes=(RequestRegion, ReleaseRegion),
                            save_to=tmp_path)
    _failure(machine)
    files = sorted((tmp_path / "findings" / MISUSE).glob("*.prog"))
    assert files
    for path in files:
        assert run(read_program(str(path))).signatures


def test_known_signatures_are_tolerated():
    # Releases alone break the contract two ways: a range nobody requested, and a boot
    # driver's claim (the decoder's address table holds every node of the default machine,
    # virtio-pci's BAR and ROM included), which the ledger calls claim-lost.
    known = frozenset({RELEASE, "busy-consistency/claim-lost/__release_region"})
    machine = machine_class(MISUSE, known=known, classes=(ReleaseRegion,))
    run_state_machine_as_test(machine, settings=settings(max_examples=20, database=None,
                                                         deadline=None))


def test_settings_profiles_and_database_location():
    assert settings.get_profile("ci").max_examples < settings.get_profile("nightly").max_examples
    assert machine_settings().database is not None
    assert isinstance(expected_findings(CORPUS, "v6.1-deb"), frozenset)


@pytest.fixture
def reregister(monkeypatch):
    """Register the settings profiles under a test's environment, then as they were."""
    monkeypatch.delenv(ENV_DB, raising=False)
    monkeypatch.delenv(ENV_PROFILE, raising=False)
    yield monkeypatch
    monkeypatch.undo()
    register_settings()


def test_unset_database_is_the_repository_directory(reregister):
    register_settings()
    db = machine_settings().database
    assert isinstance(db, DirectoryBasedExampleDatabase)
    assert db.path == DEFAULT_PATH


def test_the_database_setting_of_scale_out_applies_to_the_machine(reregister, tmp_path):
    # docs/SCALE-OUT.md: CI replays the fleet's directory and writes only its own.
    reregister.setenv(ENV_DB, f"{tmp_path / 'local'},ro:{tmp_path / 'shared'}")
    register_settings()
    for name in ("ci", "nightly"):
        db = settings.get_profile(name).database
        assert isinstance(db, MultiplexedDatabase)
        assert any(isinstance(d, ReadOnlyDatabase) for d in db._wrapped)
    reregister.setenv(ENV_DB, "none")
    register_settings()
    assert machine_settings().database is None
