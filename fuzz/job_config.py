"""What one ``iomemfuzz fuzz`` job is asked to do (the command line, as data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENGINES = ("generate", "atheris", "hypothesis")
TARGETS_DIR = Path(__file__).resolve().parent / "targets"
DEFAULT_TARGET = TARGETS_DIR / "kernel_ops.py"


@dataclass
class JobConfig:
    engine: str | None = None  # None: the default engine (job.default_engine)
    profile: str = "v6.1-deb"
    max_time: float = 60.0
    jobs: int = 1
    corpus: Path = Path("corpus")
    workdir: Path = Path("work")
    # None: libFuzzer mixes the clock with its pid; hypothesis workers get a random seed
    # the job prints. 0 is a seed like any other.
    seed: int | None = None
    max_len: int = 4096  # bytes of Program text: about 60 lines
    mutator: str = "structure"  # or "bytes": libFuzzer's byte mutations only
    value_profile: bool = True
    minimize_runs: int = 2000
    progress_every: float = 10.0  # seconds between plain progress lines (not a terminal)
    target: Path = DEFAULT_TARGET
    libfuzzer_args: tuple[str, ...] = ()
    # Stop as soon as one of these signatures is stored (benchmarks, CI smoke runs), and
    # with until_length only once its stored reproducer is at most that many lines.
    until: frozenset[str] = frozenset()
    until_length: int | None = None
    # Stop once each of these sets has a stored signature (one job timed for several
    # catalog entries of one profile: tools/bench_engines.py --grouped).
    until_each: tuple[frozenset[str], ...] = ()
