#!/usr/bin/env python3
"""Compare the fuzzing engines: throughput, time to find every catalogued bug, length.

1. Executions/s on the default profile: the atheris target (instrumented, with the
   structure-aware mutator and with libFuzzer's byte mutations only), the hypothesis
   engine, and the uninstrumented executor on the same inputs (the ceiling).
2. Time to find each *catalog entry that has a reproducer in corpus/*, with every engine
   configuration and ``iomemfuzz explore``, over several seeds: median and each run,
   ``>T`` when not found within the budget. The entries are read from the corpus, never
   written here: each entry's reproducer (``reproducer`` in ``fuzz/catalog.toml``; without
   the catalog, the shortest file naming the entry in its ``# catalog:`` header) gives the
   profile, the machine and the signatures (every ``# expect: finding`` line of that file
   on its profile): a run finds the entry when it stores one of them. Each atheris or
   hypothesis attempt is a real ``iomemfuzz fuzz`` job (fresh corpus and work
   directories, stopping at the first matching finding), so the times include start-up
   and minimization. ``explore`` is deterministic: one run per (profile, machine), depth
   ``--explore-depth``, timed from its start to the first Program with the signature.
3. Length of the minimized finding against the shortest stored reproducer.

Without ``--seeded`` every run starts from an empty corpus; a reproducer on a machine
other than the default starts from the empty Program on that machine (a seed with only
its ``# machine:`` header), since an empty corpus cannot name a machine. With
``--seeded`` the atheris jobs start from ``corpus/seeds`` minus the seeds that already
reproduce the entry. ``--png FILE`` draws the median time to find per entry and engine
on a log scale (matplotlib: ``pip install -e '.[bench]'``).

    .venv/bin/python tools/bench_engines.py --skip-rates --seeds 5 --budget 600 \
        --png docs/time-to-find.png --out /tmp/ttf.md
"""

from __future__ import annotations

import argparse
import io
import json
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
from typing import Any

from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.executor import run, run_ops
from iomemfuzz.fuzz.explore import Report, explore
from iomemfuzz.fuzz.hypothesis_pool import hypothesis_worker
from iomemfuzz.fuzz.job import JobConfig, run_job
from iomemfuzz.fuzz.job_config import DEFAULT_TARGET
from iomemfuzz.fuzz.ops import load_families
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.targets import ENV_MUTATOR, ENV_PROFILE, ENV_QUEUE
from iomemfuzz.model.profile import resolve

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    name: str  # catalog id
    profile: str
    signatures: frozenset[str]
    minimal: int  # operations in the shortest stored reproducer
    machine: str | None
    source: str  # that reproducer, relative to the repository


def _entry(name: str, path: Path) -> Bug | None:
    program = read_program(str(path))
    sigs = frozenset(e.partition(" ")[2].strip() for e in program.expectations().get(None, ())
                     if e.startswith("finding "))
    if not sigs:
        return None
    return Bug(name, program.profile or "v6.1-deb", sigs, len(program.lines),
               program.header("machine"), str(path.relative_to(ROOT)))


def catalog_entries(corpus: Path = ROOT / "corpus") -> list[Bug]:
    """Every catalog entry with a reproducer in ``corpus``: the one ``fuzz/catalog.toml``
    names; without the catalog, the shortest file naming the entry in its ``# catalog:``
    header whose expectations on its own profile include a finding."""
    best: dict[str, Bug] = {}
    try:
        from iomemfuzz.fuzz.catalog import load
    except ImportError:
        load = None  # type: ignore[assignment]
    if load is not None:
        for item in load().entries:
            if item.reproducer and (ROOT / item.reproducer).is_file():
                bug = _entry(item.id, ROOT / item.reproducer)
                if bug is not None:
                    best[item.id] = bug
        return sorted(best.values(), key=lambda b: (_order(b.name), b.name))
    for path in sorted(program_files([corpus])):
        for name in read_program(str(path)).catalog:
            bug = _entry(name, path)
            if bug is not None and (name not in best or bug.minimal < best[name].minimal):
                best[name] = bug
    return sorted(best.values(), key=lambda b: (_order(b.name), b.name))


def _order(name: str) -> int:
    digits = "".join(c for c in name if c.isdigit())
    return int(digits) if digits else 0


SEEDS = ROOT / "corpus" / "seeds"

ENGINES: tuple[tuple[str, str], ...] = (
    ("generate", "-"),
    ("atheris", "structure"),
    ("atheris", "bytes"),
    ("hypothesis", "-"),
    ("explore", "-"),
)


def _label(engine: str, mutator: str) -> str:
    if engine in ("generate", "hypothesis", "explore"):
        return engine
    return f"atheris ({mutator} mutator)"


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
        [str(DEFAULT_TARGET), str(corpus), f"-max_total_time={seconds}", "-max_len=4096",
         "-use_value_profile=1", "-print_final_stats=1", "-seed=1",
         f"-artifact_prefix={workdir}/"],
        env=env, capture_output=True, text=True, check=False)
    units = re.search(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
    if not units:
        raise RuntimeError(done.stderr[-2000:])
    return int(units.group(1)) / seconds, corpus


def ceiling_rate(corpus: Path, seconds: float) -> tuple[float, float]:
    """Uninstrumented read + run_ops over a target's corpus: (executions/s, mean ops)."""
    inputs = [p.read_bytes() for p in sorted(corpus.iterdir()) if p.is_file()]
    if not inputs:
        return 0.0, 0.0
    profile = resolve("v6.1-deb")
    runs = ops = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for data in inputs:
            program = textinput.read(data).ops
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


def _job(bug: Bug, seed: int, budget: float, seeds: list[Path] | None = None,
         **config: Any) -> Any:
    """One ``iomemfuzz fuzz`` job on ``bug``'s profile in fresh corpus and work
    directories (``config``: the rest of its JobConfig); its summary."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        folder = Path(tmp) / "corpus" / "seeds"
        folder.mkdir(parents=True)
        for path in seeds or ():
            shutil.copy(path, folder / path.name)
        if bug.machine and not seeds:
            # An empty corpus cannot name a machine: the empty Program on it is the seed.
            (folder / "machine.prog").write_text(f"# machine: {bug.machine}\n")
        cfg = JobConfig(profile=bug.profile, max_time=budget, corpus=Path(tmp) / "corpus",
                        workdir=Path(tmp) / "work", seed=seed, progress_every=1e9, **config)
        return run_job(cfg, io.StringIO())


def _first(summary: Any, bug: Bug) -> Attempt:
    """When the job first found one of ``bug``'s signatures, and the shortest it stored
    (with keep_going the job may have replaced its reproducer by a shorter route)."""
    hits = [r for r in summary.findings if r.signature in bug.signatures]
    if not hits:
        return Attempt(None, None, summary.stats.execs)
    first = min(hits, key=lambda r: r.elapsed)
    return Attempt(first.elapsed, min(r.length for r in hits), summary.stats.execs)


def attempt(bug: Bug, engine: str, mutator: str, seed: int, budget: float,
            seeds: list[Path] | None = None, keep_going: bool = False) -> Attempt:
    summary = _job(bug, seed, budget, seeds, engine=engine,
                   mutator=mutator if engine == "atheris" else "structure",
                   until=bug.signatures, until_length=bug.minimal if keep_going else None)
    return _first(summary, bug)


def group_attempt(bugs: list[Bug], seed: int, budget: float) -> dict[str, Attempt]:
    """One default job (the ``generate`` engine) from an empty corpus on the profile and
    machine ``bugs`` share, until each of them is found or the budget ends: what a user's
    one job on that profile tells about all of them. Per entry, the time its first
    signature was found (the worker's clock, from job start)."""
    summary = _job(bugs[0], seed, budget, engine="generate",
                   until_each=tuple(b.signatures for b in bugs))
    return {b.name: _first(summary, b) for b in bugs}


def groups(entries: list[Bug]) -> dict[tuple[str, str | None], list[Bug]]:
    out: dict[tuple[str, str | None], list[Bug]] = {}
    for b in entries:
        out.setdefault((b.profile, b.machine), []).append(b)
    return out


def grouped(entries: list[Bug], args: argparse.Namespace, emit: Any) -> None:
    """Time to find every entry: per (profile, machine) and seed, one job of
    ``--budget`` seconds (``--parallel`` of them at once, each in its own process)."""
    wanted = set(args.bugs.split(",")) if args.bugs else {b.name for b in entries}
    todo = [(key, bugs, seed) for key, bugs in groups([b for b in entries
                                                       if b.name in wanted]).items()
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    load = os.getloadavg()[0]
    started = time.monotonic()
    results: dict[str, list[Attempt]] = {}
    running: list[tuple[subprocess.Popen[str], list[Bug], int]] = []
    # Every job's result is appended as it ends: a stopped benchmark keeps what it ran.
    log = Path(args.out).with_suffix(".jsonl") if args.out else None

    def reap(block: bool) -> None:
        for proc, bugs, seed in list(running):
            if block or proc.poll() is not None:
                stdout, _ = proc.communicate()
                data = json.loads(stdout.strip().splitlines()[-1])
                for b in bugs:
                    results.setdefault(b.name, []).append(Attempt(*data[b.name]))
                if log is not None:
                    with log.open("a", encoding="utf-8") as f:
                        f.write(json.dumps({"profile": bugs[0].profile,
                                            "machine": bugs[0].machine, "seed": seed,
                                            "budget": args.budget, "found": data}) + "\n")
                running.remove((proc, bugs, seed))
                return

    def settled(bugs: list[Bug]) -> bool:
        """--settle: the median of --seeds runs is known once more than half of them
        found the entry (it is at most the largest of those) or more than half did not
        (it is over the budget), whatever the other seeds would do."""
        half = args.seeds // 2 + 1
        return all(sum(a.seconds is not None for a in results.get(b.name, [])) >= half
                   or sum(a.seconds is None for a in results.get(b.name, [])) >= half
                   for b in bugs)

    for (profile, machine), bugs, seed in todo:
        while len(running) >= args.parallel:
            reap(False)
            time.sleep(0.2)
        if args.settle and settled(bugs):
            continue
        cmd = [sys.executable, __file__, "--one-group", profile, machine or "",
               str(seed), str(args.budget), ",".join(b.name for b in bugs)]
        running.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True), bugs,
                        seed))
    while running:
        reap(True)
    emit(f"Time to find from an empty corpus: one `iomemfuzz fuzz` job (engine generate) "
         f"per profile/machine and seed, stopped when each entry of its profile was found "
         f"or after {args.budget:.0f} s; {args.seeds} seeds, {args.parallel} jobs at once on "
         f"{os.cpu_count()} CPUs; load average {load:.1f} at the start, "
         f"{os.getloadavg()[0]:.1f} at the end; {time.monotonic() - started:.0f} s in all. "
         f"Seconds from job start to the first of the entry's signatures (`-`: not found):")
    emit()
    time_table(entries, results, args, emit)


def replot(entries: list[Bug], args: argparse.Namespace, emit: Any) -> None:
    """The table and picture of --grouped from the OUT.jsonl logs of earlier runs."""
    results: dict[str, list[Attempt]] = {}
    for log in args.replot:
        for line in Path(log).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            for name, found in record["found"].items():
                results.setdefault(name, []).append(Attempt(*found))
    emit(f"Time to find from an empty corpus, from {', '.join(args.replot)} "
         f"(--seeds {args.seeds}, --budget {args.budget:.0f}):")
    emit()
    time_table(entries, results, args, emit)


def time_table(entries: list[Bug], results: dict[str, list[Attempt]],
               args: argparse.Namespace, emit: Any) -> None:
    emit("| entry | profile | median | runs | found | found / stored reproducer ops |")
    emit("|---|---|---|---|---|---|")
    medians: dict[str, dict[str, float | None]] = {}
    per_run: dict[str, list[float | None]] = {}
    for bug in entries:
        if bug.name not in results:
            continue
        attempts = results[bug.name]
        where = f"`{bug.profile}`" + (f" on `{bug.machine}`" if bug.machine else "")
        med = _median(attempts, args.budget)
        times = sorted(a.seconds for a in attempts if a.seconds is not None)
        half = args.seeds // 2 + 1
        if len(attempts) < args.seeds:
            # Settled early: the median of all the seeds is at most the half-th fastest
            # find (or over the budget when more than half missed).
            med = (f"<={times[half - 1]:.1f}" if len(times) >= half
                   else f">{args.budget:.0f}")
        value = med.lstrip("<=")
        medians[bug.name] = {"generate": None if med.startswith(">") else float(value)}
        per_run[bug.name] = [a.seconds for a in attempts]
        runs = ", ".join(f"{a.seconds:.1f}" if a.seconds is not None else "-"
                         for a in attempts)
        found = sum(a.seconds is not None for a in attempts)
        lengths = sorted({a.length for a in attempts if a.length is not None})
        emit(f"| {bug.name} | {where} | {med} | {runs} | {found}/{len(attempts)} | "
             f"{'/'.join(map(str, lengths)) or '-'} / {bug.minimal} |")
    emit()
    if args.png:
        picture(medians, args.budget, Path(args.png), runs=per_run)


def _one_group(argv: list[str]) -> None:
    profile, machine, seed, budget, names = argv
    load_families()
    bugs = [b for b in catalog_entries() if b.name in names.split(",")]
    assert all(b.profile == profile and (b.machine or "") == machine for b in bugs)
    got = group_attempt(bugs, int(seed), float(budget))
    print(json.dumps({n: [a.seconds, a.length, a.execs] for n, a in got.items()}))


_EXPLORED: dict[tuple[str, str | None], Report] = {}


def explore_attempt(bug: Bug, budget: float, depth: int, jobs: int) -> Attempt:
    """``iomemfuzz explore`` on the entry's profile and machine (one run per pair, shared
    by the entries on it): seconds to the first Program with one of its signatures."""
    key = (bug.profile, bug.machine)
    if key not in _EXPLORED:
        _EXPLORED[key] = explore(bug.profile, depth, machine=bug.machine, jobs=jobs,
                                 max_time=budget)
    report = _EXPLORED[key]
    hits = [s for s in bug.signatures if s in report.found_at]
    if not hits:
        return Attempt(None, None, report.programs)
    sig = min(hits, key=lambda s: report.found_at[s])
    length = report.findings[sig].count("\n")
    return Attempt(report.found_at[sig], length, report.programs)


def _median(attempts: list[Attempt], budget: float) -> str:
    # Not found counts as "more than the budget", which is enough to place the median.
    values = sorted(a.seconds if a.seconds is not None else float("inf") for a in attempts)
    med = statistics.median_low(values) if len(values) % 2 else statistics.median(values)
    return f">{budget:.0f}" if med == float("inf") else f"{med:.1f}"


def main() -> None:
    if sys.argv[1:2] == ["--one-group"]:
        _one_group(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per attempt")
    parser.add_argument("--rate-seconds", type=int, default=30)
    parser.add_argument("--bugs", default="", help="catalog ids (default: every entry)")
    parser.add_argument("--explore-depth", type=int, default=3)
    parser.add_argument("--explore-jobs", type=int, default=2)
    parser.add_argument("--explore-budget", type=float, default=None,
                        help="seconds per explore run (default: --budget)")
    parser.add_argument("--png", default=None, help="write the time-to-find picture here")
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
    parser.add_argument("--grouped", action="store_true",
                        help="one default job per profile/machine and seed, until each of "
                             "its entries is found (every entry, or --bugs)")
    parser.add_argument("--parallel", type=int, default=2,
                        help="--grouped jobs at once")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--replot", nargs="+", default=None, metavar="JSONL",
                        help="--grouped's table and --png from the OUT.jsonl of earlier runs")
    parser.add_argument("--settle", action="store_true",
                        help="--grouped: run no further seed of a profile once each of its "
                             "entries was found, or missed, by more than half of --seeds "
                             "(which settles their median)")
    parser.add_argument("--baseline", action="store_true",
                        help="side by side with tools/baseline_hypothesis.py (B16, B5, B7, "
                             "B1 or --bugs among them): per seed, the plain state machine, "
                             "then the first engine of --engines")
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
    entries = catalog_entries()
    if args.grouped or args.replot:
        (replot if args.replot else grouped)(entries, args, emit)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    if args.baseline:
        side_by_side(entries, args, emit)
        if args.out:
            Path(args.out).write_text("\n".join(lines) + "\n")
        return
    wanted = set(args.bugs.split(",")) if args.bugs else {b.name for b in entries}
    engines = [(*e.split(":", 1), "-")[:2] for e in args.engines.split(",")]
    start = ("corpus/seeds minus the seeds that already reproduce the bug" if args.seeded
             else "an empty corpus")
    emit(f"Time to find (seconds, wall clock from job start; {args.seeds} seeds, budget "
         f"{args.budget:.0f} s per attempt; `>T` = not found; starting from {start}; "
         f"load average {os.getloadavg()[0]:.1f} at the start):")
    emit()
    notes: list[str] = []
    medians: dict[str, dict[str, float | None]] = {}
    emit("| entry | profile | engine | median | runs | found / stored reproducer ops |")
    emit("|---|---|---|---|---|---|")
    for bug in entries:
        if bug.name not in wanted:
            continue
        seeds: list[Path] | None = None
        if args.seeded:
            seeds, dropped = usable_seeds(bug)
            notes.append(f"{bug.name}: {len(seeds)} seeds; dropped (already reproduce it): "
                         f"{', '.join(dropped) or 'none'}")
        where = f"`{bug.profile}`" + (f" on `{bug.machine}`" if bug.machine else "")
        for engine, mutator in engines:
            if engine == "explore":
                attempts = [explore_attempt(bug, args.explore_budget or args.budget,
                                            args.explore_depth, args.explore_jobs)]
            else:
                attempts = [attempt(bug, engine, mutator, seed, args.budget,
                                    seeds if engine == "atheris" else None, args.keep_going)
                            for seed in range(1, args.seeds + 1)]
            runs = ", ".join(f"{a.seconds:.1f}" if a.seconds is not None else "-"
                             for a in attempts)
            lengths = sorted({a.length for a in attempts if a.length is not None})
            length = "/".join(str(n) for n in lengths) if lengths else "-"
            med = _median(attempts, args.budget)
            medians.setdefault(bug.name, {})[_label(engine, mutator)] = (
                None if med.startswith(">") else float(med))
            emit(f"| {bug.name} | {where} | {_label(engine, mutator)} | {med} | {runs} | "
                 f"{length} / {bug.minimal} |")
    emit()
    emit("Signatures and reproducers the entries were read from:")
    emit()
    for bug in entries:
        if bug.name in wanted:
            emit(f"* {bug.name}: {', '.join(sorted(bug.signatures))} ({bug.source})")
    if notes:
        emit()
        for note in notes:
            emit(f"* {note}")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    if args.png:
        picture(medians, args.budget, Path(args.png))


BASELINE = ROOT / "tools" / "baseline_hypothesis.py"


def baseline_attempt(bug: Bug, seed: int, budget: float) -> Attempt:
    """The plain state machine on the entry's profile, until its invariant for the entry
    breaks (tools/baseline_hypothesis.py; seconds from its search start)."""
    done = subprocess.run([sys.executable, str(BASELINE), "--bug", bug.name, "--profile",
                           bug.profile, "--seed", str(seed), "--budget", str(budget)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Attempt(result["seconds"], None, result["examples"])


def side_by_side(entries: list[Bug], args: argparse.Namespace, emit: Any) -> None:
    """Each of B16, B5, B7, B1 (or those of --bugs): baseline and framework per seed, in
    turn, so both see the same machine load."""
    wanted = [b for b in (args.bugs.split(",") if args.bugs else ["B16", "B5", "B7", "B1"])]
    engine, mutator = (*args.engines.split(",")[0].split(":", 1), "-")[:2]
    emit(f"Side by side from an empty start ({args.seeds} seeds, budget {args.budget:.0f} s, "
         f"load average {os.getloadavg()[0]:.1f} at the start); framework engine: "
         f"{_label(engine, mutator)}:")
    emit()
    emit("| entry | profile | plain hypothesis: median (runs) | framework: median (runs) | "
         "ratio of medians |")
    emit("|---|---|---|---|---|")
    by_name = {b.name: b for b in entries}
    for name in wanted:
        bug = by_name[name]
        base, ours = [], []
        for seed in range(1, args.seeds + 1):
            base.append(baseline_attempt(bug, seed, args.budget))
            if engine == "explore":
                _EXPLORED.clear()  # one run per seed, timed afresh
                ours.append(explore_attempt(bug, args.budget, args.explore_depth,
                                            args.explore_jobs))
            else:
                ours.append(attempt(bug, engine, mutator, seed, args.budget))
        b_med, o_med = _median(base, args.budget), _median(ours, args.budget)
        raw = [statistics.median(a.seconds if a.seconds is not None else float("inf")
                                 for a in x) for x in (base, ours)]
        ratio = (f"{raw[0] / raw[1]:.2f}x" if raw[1] not in (0, float("inf"))
                 and raw[0] != float("inf") else f">{args.budget / raw[1]:.1f}x"
                 if raw[0] == float("inf") and raw[1] != float("inf") else "-")
        runs = [", ".join(f"{a.seconds:.2f}" if a.seconds is not None else "-" for a in x)
                for x in (base, ours)]
        emit(f"| {name} | `{bug.profile}` | {b_med} ({runs[0]}) | {o_med} ({runs[1]}) | "
             f"{ratio} |")


def picture(medians: dict[str, dict[str, float | None]], budget: float, out: Path,
            runs: dict[str, list[float | None]] | None = None) -> None:
    """Median time to find per entry (x) and engine (marker), log scale; an entry an
    engine did not find sits on the budget line, drawn hollow. With ``runs`` (one engine),
    each run is a small grey dot beside its median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(medians)
    engines = sorted({e for row in medians.values() for e in row})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.2))
    markers = "os^Dv<>"
    width = 0.6 / max(1, len(engines))
    for k, engine in enumerate(engines):
        xs, ys, xm = [], [], []
        for i, name in enumerate(names):
            value = medians[name].get(engine, "absent")
            if value == "absent":
                continue
            x = i + (k - (len(engines) - 1) / 2) * width
            if value is None:
                xm.append(x)
            else:
                xs.append(x)
                ys.append(max(float(value), 0.05))
        colour = f"C{k}"
        ax.scatter(xs, ys, marker=markers[k % len(markers)], color=colour, label=engine)
        ax.scatter(xm, [budget] * len(xm), marker=markers[k % len(markers)],
                   facecolors="none", edgecolors=colour)
    for i, name in enumerate(names):
        times = (runs or {}).get(name, [])
        ax.scatter([i + 0.22] * len(times),
                   [max(t, 0.05) if t is not None else budget for t in times],
                   s=9, color="grey", alpha=0.6, zorder=1,
                   label="each seed" if i == 0 and runs else None)
    ax.axhline(budget, color="grey", linewidth=0.8, linestyle="--")
    ax.text(len(names) - 0.5, budget * 1.08, f"budget {budget:.0f} s (hollow: not found)",
            ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_ylim(0.05, budget * 2)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=0, fontsize=8)
    ax.set_xlabel("catalog entry (its shortest reproducer in corpus/)")
    ax.set_ylabel("median time to find from empty (s, log)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
