"""Whole fuzz jobs as a user runs them: libFuzzer workers and hypothesis processes, the
queue they share with the job, signals, the summary and the corpus files it writes
(fuzz/job.py and the modules it drives). Everything here starts processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.job import JobConfig, run_job
from iomemfuzz.fuzz.job_config import DEFAULT_TARGET
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.workspace import Workspace
from job_rig import B16, IOMEMFUZZ, PROFILE, RELEASE, RELEASES, replays


def test_leftover_queue_is_drained_first(tmp_path):
    ws = Workspace(tmp_path / "work", PROFILE)
    (ws.queue / "left-over.prog").write_bytes(textinput.write_program(B16))
    summary = run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work", profile=PROFILE), io.StringIO())
    assert RELEASE in {r.signature for r in summary.findings}
    assert not list(ws.queue.iterdir())
    replays(tmp_path / "corpus")


def test_seeds_are_the_exported_corpus_every_file_with_its_machine(tmp_path):
    seeds = tmp_path / "corpus" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "b16.prog").write_text(format_program(B16))
    (seeds / "other-machine.prog").write_text("# machine: empty\n\n" + format_program(B16))
    out = io.StringIO()
    run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                      workdir=tmp_path / "work"), out)
    ws = Workspace(tmp_path / "work", "v6.1-deb")
    assert sorted(textinput.read(p.read_bytes()).ops for p in ws.seeds.iterdir()) == [B16.ops] * 2
    assert f"2 seed input(s) from {tmp_path / 'corpus'}" in out.getvalue()
    assert "skipped" not in out.getvalue()
    machines = {textinput.read(p.read_bytes()).machine for p in ws.seeds.iterdir()}
    assert machines == {None, "empty"}  # every Program is a seed, its machine kept


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["generate", "atheris", "hypothesis"])
def test_fuzz_job_finds_and_stores_b16(tmp_path, engine):
    if engine == "atheris":
        pytest.importorskip("atheris")
    out = io.StringIO()
    summary = run_job(JobConfig(engine=engine, max_time=4, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work", seed=1, profile=PROFILE), out)
    sigs = {r.signature for r in summary.findings}
    assert any(s.startswith(RELEASES) for s in sigs), out.getvalue()
    assert summary.exit_code == 1
    assert summary.stats.execs > 0
    files = replays(tmp_path / "corpus")
    assert len(files) == len(sigs)
    assert "summary" in out.getvalue()


@pytest.mark.slow
def test_jobs_2_runs_two_libfuzzer_workers_with_one_summary(tmp_path):
    pytest.importorskip("atheris")
    out = io.StringIO()
    summary = run_job(JobConfig(engine="atheris", jobs=2, max_time=8,
                                corpus=tmp_path / "corpus", workdir=tmp_path / "work",
                                seed=1, profile=PROFILE), out)
    text = out.getvalue()
    pids = {ln.split()[4] for ln in text.splitlines()
            if ln.startswith(("worker 0: libFuzzer pid", "worker 1: libFuzzer pid"))}
    assert len(pids) == 2, text
    # Both fuzzed, each counted once, into one summary.
    assert len(summary.workers) == 2 and all(n > 0 for n in summary.workers), text
    assert summary.stats.execs == sum(summary.workers)
    assert text.count("summary: engine atheris") == 1
    assert f"2 workers: {summary.workers[0]} + {summary.workers[1]} executions" in text
    ws = Workspace(tmp_path / "work", PROFILE)
    assert any(ws.corpus.iterdir())  # the one shared work corpus
    assert {p.name for p in ws.artifacts.iterdir()} == {"worker0", "worker1"}
    assert any(r.signature.startswith(RELEASES) for r in summary.findings), text
    replays(tmp_path / "corpus")


@pytest.mark.slow
def test_a_worker_that_cannot_start_does_not_stop_the_others(tmp_path):
    pytest.importorskip("atheris")
    # Worker 0 (seed 1) fails at once; worker 1 (seed 2) is the real target.
    target = tmp_path / "flaky.sh"
    target.write_text("#!/bin/sh\n"
                      'case " $* " in *" -seed=1 "*) echo "cannot start"; exit 3;; esac\n'
                      f'exec "{DEFAULT_TARGET}" "$@"\n')
    target.chmod(0o755)
    out = io.StringIO()
    started = time.monotonic()
    summary = run_job(JobConfig(engine="atheris", jobs=2, max_time=5, seed=1, target=target,
                                corpus=tmp_path / "corpus", workdir=tmp_path / "work"), out)
    text = out.getvalue()
    assert "worker 0: libFuzzer ended with status 3; last lines:\n  | cannot start" in text
    assert "worker 1: libFuzzer ended" not in text
    assert summary.workers[0] == 0 < summary.workers[1], text
    assert time.monotonic() - started < 30


def _start(tmp_path: Path, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [IOMEMFUZZ, "fuzz", "--max-time", str(seconds), "--corpus", str(tmp_path / "corpus"),
         "--workdir", str(tmp_path / "work"), "--seed", "1", "--profile", PROFILE],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def _wait_for_finding(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("finding "):
            return seen
    raise AssertionError("no finding reported:\n" + "".join(seen))


def _fuzzers_using(path: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if str(path).encode() in environ and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_sigkill_loses_nothing_reported(tmp_path):
    pytest.importorskip("atheris")
    proc = _start(tmp_path, 60)
    try:
        lines = _wait_for_finding(proc, 40)
    finally:
        proc.kill()
        proc.wait()
    reported = [ln.split()[1] for ln in lines if ln.startswith("finding ")]
    files = replays(tmp_path / "corpus")
    stored = {read_program(str(f)).expectations()[None][0].split()[1] for f in files}
    assert set(reported) <= stored
    # The fuzzer it started dies with it (PR_SET_PDEATHSIG).
    deadline = time.monotonic() + 10
    while _fuzzers_using(tmp_path / "work") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _fuzzers_using(tmp_path / "work")


@pytest.mark.slow
def test_sigint_ends_cleanly_with_a_summary(tmp_path):
    pytest.importorskip("atheris")
    proc = _start(tmp_path, 60)
    try:
        _wait_for_finding(proc, 40)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # Interrupted wins over "findings were made" (exit_codes.PRECEDENCE).
    assert proc.returncode == 130
    assert "(interrupted) summary" in rest and "new findings: none" not in rest
    replays(tmp_path / "corpus")


def test_coverage_command_reports_model_lines_and_branches(tmp_path):
    from iomemfuzz.fuzz.coverage_report import coverage_report
    from iomemfuzz.fuzz.program_format import format_program

    (tmp_path / "b16.prog").write_text(format_program(B16))
    (tmp_path / "bytes").mkdir()
    (tmp_path / "bytes" / "one").write_bytes(textinput.write_program(B16))
    out = io.StringIO()
    totals = coverage_report([tmp_path], byte_dirs=[tmp_path / "bytes"],
                             html=tmp_path / "html", out=out)
    assert totals.programs == 2
    assert 0 < totals.lines_covered < totals.lines
    assert 0 < totals.branches_covered < totals.branches
    report = out.getvalue()
    assert "model/resource.py" in report and "branches" in report
    assert (tmp_path / "html" / "index.html").is_file()
