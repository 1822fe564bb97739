#!/usr/bin/env python3
"""Compare the fuzzing engines: throughput, time to find known bugs, minimized length.

1. Executions/s on the default profile: the atheris target (instrumented, with the
   structure-aware mutator and with libFuzzer's byte mutations only), the hypothesis
   engine, and the uninstrumented executor on the same inputs (the ceiling).
2. Time to find each bug of ``BUGS`` (bug-catalog entries, with the profile that
   makes each a finding and the signatures that identify it) with every engine
   configuration, over several seeds: median and each run, ``>T`` when not found within
   the budget. Each run is a real ``iomemfuzz fuzz`` job (fresh corpus and work
   directories, stopping at the first matching finding), so the times include start-up
   and minimization.
3. Length of the minimized finding against the known minimal length: of the first
   reproducer, or with ``--keep-going`` of the one stored when the job ends (a job
   replaces a finding by a shorter route; with this flag it runs on after the first find
   until the stored one is as short as the known minimal or the budget is spent).

With ``--seeded`` the atheris jobs start from the repository's hand-written seeds
(``corpus/seeds``, minus any seed that already reproduces the bug on its profile; never
``corpus/findings``), as ``iomemfuzz fuzz`` does in a checkout; without it, from an
empty corpus. Bugs whose operations are not registered yet are skipped with a note. Results go to
stdout as Markdown (``--out FILE`` writes them there too).

    .venv/bin/python tools/bench_engines.py --seeds 5 --budget 120 --out docs/bench.md
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from iomemfuzz.fuzz import decode
from iomemfuzz.fuzz.executor import run, run_ops
from iomemfuzz.fuzz.hypothesis_pool import hypothesis_worker
from iomemfuzz.fuzz.job import JobConfig, run_job
from iomemfuzz.fuzz.job_config import DEFAULT_TARGET
from iomemfuzz.fuzz.ops import REGISTRY, load_families
from iomemfuzz.fuzz.program import parse_program
from iomemfuzz.fuzz.targets import ENV_MUTATOR, ENV_PROFILE, ENV_QUEUE
from iomemfuzz.model.profile import resolve


@dataclass(frozen=True)
class Bug:
    name: str
    profile: str
    signatures: frozenset[str]
    minimal: int  # operations in the shortest known reproducer
    needs: tuple[str, ...]  # operations it cannot be reached without
    note: str


BUGS: tuple[Bug, ...] = (
    Bug("B16", "v6.1-deb", frozenset({"busy-consistency/release-without-claim"}), 1,
        ("__release_region",),
        "a release matching no busy region (wrong size, twice, never claimed)"),
    Bug("B7", "v6.1-deb-byte-exact", frozenset({"mapping-survival/collateral-revocation"}), 3,
        ("open_devmem", "mmap", "__request_region"),
        "open /dev/mem, mmap a page, claim part of it: the whole page is zapped"),
    Bug("B5", "v6.1-deb-no-io-strict:by_design=",
        frozenset({"mapping-survival/unrevoked-claim", "mapping-survival/no-revocation",
                   "mapping-survival/mapped-after-claim"}), 4,
        ("open_devmem", "mmap", "__request_region", "touch"),
        "as B7, the claim covers the mapping, IO_STRICT_DEVMEM=n revokes nothing and the "
        "access goes through (the profile's by-design acceptance of B5 removed)"),
    Bug("B1", "v6.1-deb", frozenset({"duplicate-attributes/duplicate-filename"}), 4,
        ("boot_to", "hotadd", "host_probe", "step"),
        "boot to device level, hot-add behind an async host, host_probe as a task, step "
        "it: its bus-add races pci_sysfs_init (minimized from corpus/findings/v6.1-deb/b1-*)"),
)

SEEDS = Path(__file__).resolve().parent.parent / "corpus" / "seeds"

ENGINES: tuple[tuple[str, str], ...] = (
    ("atheris", "structure"),
    ("atheris", "bytes"),
    ("hypothesis", "-"),
)


def _label(engine: str, mutator: str) -> str:
    return engine if engine == "hypothesis" else f"atheris ({mutator} mutator)"


# --- throughput -------------------------------------------------------------------------


def atheris_rate(mutator: str, seconds: int, workdir: Path) -> tuple[float, Path]:
    """Run the target alone for ``seconds``; executions/s from libFuzzer's final stats."""
    corpus = workdir / f"corpus-{mutator}"
    queue = workdir / f"queue-{mutator}"
    corpus.mkdir(parents=True, exist_ok=True)
    queue.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update({ENV_PROFILE: "v6.1-deb", ENV_QUEUE: str(queue), ENV_MUTATOR: mutator})
    done = subprocess.run(
        [str(DEFAULT_TARGET), str(corpus), f"-max_total_time={seconds}", "-max_len=512",
         "-use_value_profile=1", "-print_final_stats=1", "-seed=1",
         f"-artifact_prefix={workdir}/"],
        env=env, capture_output=True, text=True, check=False)
    units = re.search(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
    if not units:
        raise RuntimeError(done.stderr[-2000:])
    return int(units.group(1)) / seconds, corpus


def ceiling_rate(corpus: Path, seconds: float) -> tuple[float, float]:
    """Uninstrumented decode + run_ops over a byte corpus: (executions/s, mean ops)."""
    inputs = [p.read_bytes() for p in sorted(corpus.iterdir()) if p.is_file()]
    if not inputs:
        return 0.0, 0.0
    profile = resolve("v6.1-deb")
    runs = ops = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for data in inputs:
            program = decode.decode_ops(data)
            ops += len(program)
            run_ops(program, profile)
            runs += 1
    return runs / (time.perf_counter() - start), ops / runs


def hypothesis_rate(seconds: float) -> float:
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("q", 0, lock=False)
    halt = ctx.Event()
    worker = ctx.Process(target=hypothesis_worker, daemon=True,
                         args=("v6.1-deb", tempfile.mkdtemp(prefix="bench-hq-"), [],
                               time.time() + seconds, 1, counter, halt))
    start = time.time()
    worker.start()
    worker.join(seconds + 60)
    return counter.value / (time.time() - start)


# --- time to find -----------------------------------------------------------------------


@dataclass
class Attempt:
    seconds: float | None  # None: not found within the budget
    length: int | None
    execs: int


def usable_seeds(bug: Bug) -> tuple[list[Path], list[str]]:
    """The repository's hand-written seeds (``corpus/seeds``, never ``corpus/findings``)
    minus those that already reproduce the bug on its profile: (kept, dropped names).
    With them the benchmark measures what ``iomemfuzz fuzz`` does in a checkout, where
    the job exports the text corpus as libFuzzer's seed inputs."""
    kept: list[Path] = []
    dropped: list[str] = []
    for path in sorted(SEEDS.glob("*.prog")):
        program = parse_program(path.read_text(encoding="utf-8"), str(path))
        if set(run(program, bug.profile).signatures) & bug.signatures:
            dropped.append(path.name)
        else:
            kept.append(path)
    return kept, dropped


def attempt(bug: Bug, engine: str, mutator: str, seed: int, budget: float,
            seeds: list[Path] | None = None, keep_going: bool = False) -> Attempt:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if seeds:
            folder = Path(tmp) / "corpus" / "seeds"
            folder.mkdir(parents=True)
            for path in seeds:
                shutil.copy(path, folder / path.name)
        cfg = JobConfig(engine=engine, profile=bug.profile, max_time=budget,
                        corpus=Path(tmp) / "corpus", workdir=Path(tmp) / "work", seed=seed,
                        mutator=mutator if engine == "atheris" else "structure",
                        until=bug.signatures,
                        until_length=bug.minimal if keep_going else None,
                        progress_every=1e9)
        summary = run_job(cfg, io.StringIO())
    hits = [r for r in summary.findings if r.signature in bug.signatures]
    if not hits:
        return Attempt(None, None, summary.stats.execs)
    first = min(hits, key=lambda r: r.elapsed)
    # With keep_going the job went on after the first find and may have replaced its
    # reproducer by a shorter route: the length is what the corpus holds at the end.
    return Attempt(first.elapsed, min(r.length for r in hits), summary.stats.execs)


def _median(attempts: list[Attempt], budget: float) -> str:
    # Not found counts as "more than the budget", which is enough to place the median.
    values = sorted(a.seconds if a.seconds is not None else float("inf") for a in attempts)
    med = statistics.median_low(values) if len(values) % 2 else statistics.median(values)
    return f">{budget:.0f}" if med == float("inf") else f"{med:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per attempt")
    parser.add_argument("--rate-seconds", type=int, default=30)
    parser.add_argument("--bugs", default=",".join(b.name for b in BUGS))
    parser.add_argument("--engines", default=",".join(f"{e}:{m}" for e, m in ENGINES))
    parser.add_argument("--skip-rates", action="store_true")
    parser.add_argument("--seeded", action="store_true",
                        help="start from corpus/seeds (minus seeds that already reproduce "
                             "the bug) instead of an empty corpus")
    parser.add_argument("--keep-going", action="store_true",
                        help="after the first finding of the bug, keep each job running "
                             "until its stored reproducer is as short as the known minimal "
                             "one or the budget ends; the length is then what it stored")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    load_families()
    lines: list[str] = []

    def emit(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    emit(f"Command: `{' '.join(['.venv/bin/python', 'tools/bench_engines.py', *sys.argv[1:]])}`"
         f" on {os.cpu_count()} CPUs.")
    emit()
    if not args.skip_rates:
        with tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp:
            emit("| engine (profile v6.1-deb) | executions/s |")
            emit("|---|---|")
            corpus = None
            for mutator in ("structure", "bytes"):
                rate, c = atheris_rate(mutator, args.rate_seconds, Path(tmp))
                corpus = corpus or c
                emit(f"| atheris, instrumented, {mutator} mutator | {rate:.0f} |")
            emit(f"| hypothesis (programs(), 1 worker) | "
                 f"{hypothesis_rate(args.rate_seconds):.0f} |")
            ceiling, mean_ops = ceiling_rate(corpus, min(args.rate_seconds, 15))
            emit(f"| uninstrumented executor on the atheris corpus (ceiling; "
                 f"{mean_ops:.1f} ops per input) | {ceiling:.0f} |")
        emit()
    wanted = set(args.bugs.split(","))
    engines = [tuple(e.split(":", 1)) for e in args.engines.split(",")]
    start = ("corpus/seeds minus the seeds that already reproduce the bug" if args.seeded
             else "an empty corpus")
    emit(f"Time to find (seconds, wall clock from job start; {args.seeds} seeds, budget "
         f"{args.budget:.0f} s per attempt; `>T` = not found; starting from {start}):")
    emit()
    notes: list[str] = []
    emit("| bug | profile | engine | median | runs | minimized / known minimal ops |")
    emit("|---|---|---|---|---|---|")
    for bug in BUGS:
        if bug.name not in wanted:
            continue
        missing = [n for n in bug.needs if n not in REGISTRY]
        if missing:
            emit(f"| {bug.name} | {bug.profile} | - | skipped: operations "
                 f"{', '.join(missing)} not registered yet | | |")
            continue
        seeds: list[Path] | None = None
        if args.seeded:
            seeds, dropped = usable_seeds(bug)
            notes.append(f"{bug.name}: {len(seeds)} seeds; dropped (already reproduce it): "
                         f"{', '.join(dropped) or 'none'}")
        for engine, mutator in engines:
            attempts = [attempt(bug, engine, mutator, seed, args.budget,
                                seeds if engine == "atheris" else None, args.keep_going)
                        for seed in range(1, args.seeds + 1)]
            runs = ", ".join(f"{a.seconds:.1f}" if a.seconds is not None else "-"
                             for a in attempts)
            lengths = sorted({a.length for a in attempts if a.length is not None})
            length = "/".join(str(n) for n in lengths) if lengths else "-"
            emit(f"| {bug.name} | `{bug.profile}` | {_label(engine, mutator)} | "
                 f"{_median(attempts, args.budget)} | {runs} | {length} / {bug.minimal} |")
    if notes:
        emit()
        for note in notes:
            emit(f"* {note}")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
