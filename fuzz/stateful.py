"""A hypothesis state machine over the operation table. Thin: it only turns rules into Ops.

Each registered operation is one rule; the rule draws the operation's fields with
:func:`iomemfuzz.fuzz.strategies.ops_of` (handles among those bound so far) and hands it to
:meth:`Execution.step`, which runs every oracle. The machine fails when a step (or the
end-of-program check in ``teardown``) reports a violation whose signature the corpus does
not already record for the profile; the canonical Program text is attached with
``hypothesis.note`` and, when ``IOMEMFUZZ_SAVE_FINDINGS=DIR`` is set, stored in that corpus
like a fuzz job would.

Operations that control boot (``CONTROLS_BOOT``) need a kernel that starts unbooted, which
Program text expresses by containing one; so the machine starts unbooted only when its
first rule (an ``initialize`` rule) is such an operation, exactly as replaying the Program
text would.

Settings profiles: ``ci`` (bounded, the default for tests) and ``nightly`` (long); pick one
with ``IOMEMFUZZ_HYPOTHESIS_PROFILE``. Failing examples are kept in the example database
``IOMEMFUZZ_HYPOTHESIS_DB`` chooses (:mod:`iomemfuzz.fuzz.exampledb`: a directory, read-only
and GitHub artefact sources, several at once, or none), else ``.hypothesis/examples`` at the
repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from iomemfuzz.fuzz.corpus import program_files, save_finding
from iomemfuzz.fuzz.exampledb import example_database
from iomemfuzz.fuzz.executor import Execution, Step
from iomemfuzz.fuzz.finding import Finding, Violation
from iomemfuzz.fuzz.ops import Op
from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
from iomemfuzz.fuzz.sink import known_signatures
from iomemfuzz.fuzz.strategies import op_classes, ops_of
from iomemfuzz.model.profile import DEFAULT, resolve

ENV_PROFILE = "IOMEMFUZZ_HYPOTHESIS_PROFILE"
ENV_SAVE = "IOMEMFUZZ_SAVE_FINDINGS"
REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus"


def register_settings() -> None:
    """(Re-)register the ``ci`` and ``nightly`` profiles with the database
    ``$IOMEMFUZZ_HYPOTHESIS_DB`` chooses now; done once at import."""
    common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow],
              "database": example_database()}
    settings.register_profile("ci", max_examples=60, stateful_step_count=20, **common)
    settings.register_profile("nightly", max_examples=20000, stateful_step_count=60, **common)


register_settings()


def machine_settings() -> settings:
    return settings.get_profile(os.environ.get(ENV_PROFILE, "ci"))


def expected_findings(corpus: Path, profile: str) -> frozenset[str]:
    """Signatures the corpus already records on ``profile``: its findings, and the
    ``expect: finding`` lines of seed files about that profile."""
    sigs = set(known_signatures(corpus, profile))
    seeds = Path(corpus) / "seeds"
    if seeds.is_dir():
        for path in program_files([seeds]):
            try:
                p = read_program(str(path))
            except (ProgramSyntaxError, OSError):
                continue
            for key, expects in p.expectations().items():
                if (key or p.profile or DEFAULT.name) != profile:
                    continue
                sigs.update(e.partition(" ")[2].strip() for e in expects
                            if e.startswith("finding "))
    return frozenset(sigs)


class ProgramMachine(RuleBasedStateMachine):
    """Base machine; :func:`machine_class` adds one rule per operation."""

    profile: str = DEFAULT.name
    known: frozenset[str] = frozenset()
    save_to: Path | None = None

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.handles = 0
        self.execution: Execution | None = None
        self.unbooted = False
        self.finished = False

    # The kernel is made on the first step, booted unless that step controls boot.
    def _ensure(self, first: Op) -> Execution:
        if self.execution is None:
            self.unbooted = type(first).CONTROLS_BOOT
            self.execution = Execution.start(self.profile, booted=not self.unbooted)
        return self.execution

    def run_op(self, o: Op) -> None:
        step = self._ensure(o).step(o)
        self.ops.append(o)
        self.handles += type(o).BINDS
        self._check(step)

    def program(self) -> Program:
        return Program().with_ops(self.ops).with_headers(profile=resolve(self.profile).name)

    def _check(self, step: Step) -> None:
        new = [v for v in step.violations if v.signature not in self.known]
        if new:
            self._fail(new[0])

    def _fail(self, v: Violation) -> None:
        text = format_program(self.program())
        note(f"finding {v.signature}: {v.message}\n{text}")
        if self.save_to is not None:
            save_finding(self.save_to, Finding(v.signature, self.program().profile or "",
                                               text, v.message))
        raise AssertionError(f"finding {v.signature}: {v.message}\n{text}")

    def teardown(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.execution is None:
            self.execution = Execution.start(self.profile)
        trace = self.execution.finish()
        self._check(trace.steps[-1])


def _boot_op_rule(classes: tuple[type[Op], ...]):
    boot = tuple(c for c in classes if c.CONTROLS_BOOT)

    @initialize(data=st.data())
    def start(self: ProgramMachine, data: st.DataObject) -> None:
        # Unbooted only if the Program begins with an operation that controls boot.
        if boot and data.draw(st.booleans(), label="unbooted"):
            cls = data.draw(st.sampled_from(boot))
            self.run_op(data.draw(ops_of(cls, self.handles)))

    return start


def _op_rule(cls: type[Op]):
    def body(self: ProgramMachine, data: st.DataObject) -> None:
        self.run_op(data.draw(ops_of(cls, self.handles), label=cls.NAME))

    body.__name__ = "op_" + "".join(c if c.isalnum() else "_" for c in cls.NAME)
    decorated = rule(data=st.data())(body)
    if cls.CONTROLS_BOOT:
        # A boot-control operation later in the Program would make its text replay on an
        # unbooted kernel, unlike this run: allowed only once the run started unbooted.
        decorated = precondition(lambda self: self.unbooted)(decorated)
    return body.__name__, decorated


def machine_class(profile: str | None = None, known: frozenset[str] | None = None,
                  classes: tuple[type[Op], ...] | None = None,
                  save_to: Path | str | None = None) -> type[ProgramMachine]:
    """A machine class for ``profile`` with one rule per operation of ``classes``.

    ``known`` defaults to what the corpus records for the profile; ``save_to`` defaults
    to ``$IOMEMFUZZ_SAVE_FINDINGS``."""
    name = resolve(profile).name
    pool = classes if classes is not None else op_classes()
    attrs: dict[str, object] = {
        "profile": name,
        "known": expected_findings(CORPUS, name) if known is None else frozenset(known),
        "save_to": Path(save_to) if save_to else (
            Path(os.environ[ENV_SAVE]) if os.environ.get(ENV_SAVE) else None),
        "start": _boot_op_rule(pool),
    }
    for cls in pool:
        rule_name, decorated = _op_rule(cls)
        attrs[rule_name] = decorated
    return type(f"ProgramMachine_{name.replace('-', '_').replace('.', '_')}",
                (ProgramMachine,), attrs)
