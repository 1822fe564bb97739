"""``iomemfuzz fuzz``: findings are minimized, deduplicated and written before they are
reported; a job killed with SIGKILL loses nothing it reported; SIGINT ends with a summary.

The end-to-end tests run real engines on small budgets (a few seconds each): the
wrong-size release of B16 is found within the first second by either engine."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from iomemfuzz.fuzz import decode
from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.job import (
    Console,
    FindingSink,
    JobConfig,
    Stats,
    Workspace,
    known_signatures,
    parse_status,
    run_job,
)
from iomemfuzz.fuzz.program import parse_program, read_program
from iomemfuzz.fuzz.replay import check_program

GAP = 0xFE000000
RELEASE = "busy-consistency/release-without-claim"
B16 = parse_program(f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"
                    f"__release_region(start={GAP:#x}, n=0x80)\n")
IOMEMFUZZ = str(Path(sys.executable).parent / "iomemfuzz")


def _replays(corpus: Path) -> list[Path]:
    files = list(program_files([corpus / "findings"]))
    for path in files:
        text = path.read_text()
        result = check_program(parse_program(text, str(path)), str(path), text)
        assert result.ok, [str(m) for m in result.mismatches]
    return files


def test_parse_status_reads_plain_and_fork_lines():
    stats = Stats()
    assert parse_status("#4096\tpulse  cov: 637 ft: 1746 corp: 142/5712b lim: 512 "
                        "exec/s: 256 rss: 52Mb", stats)
    assert (stats.execs, stats.cov, stats.ft, stats.corpus) == (4096, 637, 1746, 142)
    assert parse_status("#52000: cov: 700 ft: 2000 corp: 300 exec/s: 0 oom/timeout/crash: "
                        "0/0/0 time: 12s job: 4 dft_time: 0", stats, base=100)
    assert (stats.execs, stats.cov, stats.corpus) == (52100, 700, 300)
    assert not parse_status("INFO: Seed: 1", stats)


def test_sink_minimizes_writes_then_dedups(tmp_path):
    out = io.StringIO()
    sink = FindingSink(tmp_path, "v6.1-deb", "test", Console(out, 1.0), time.monotonic(), 500)
    sink.handle(B16)
    assert RELEASE in sink.reported
    files = _replays(tmp_path)
    assert len(files) == len(sink.reported)
    assert f"finding {RELEASE}" in out.getvalue()
    first = sink.reported[RELEASE].path.read_text()
    sink.handle(B16)  # the same signature again: nothing new
    assert sink.reported[RELEASE].path.read_text() == first
    assert out.getvalue().count(f"finding {RELEASE} ") == 1
    # A later job knows it from the corpus and does not report it again.
    assert RELEASE in known_signatures(tmp_path, "v6.1-deb")
    again = FindingSink(tmp_path, "v6.1-deb", "test", Console(io.StringIO(), 1.0),
                        time.monotonic(), 500)
    again.handle(B16)
    assert RELEASE not in again.reported


def test_leftover_queue_is_drained_first(tmp_path):
    ws = Workspace(tmp_path / "work", "v6.1-deb")
    (ws.queue / "left-over.bin").write_bytes(decode.encode(B16))
    summary = run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work"), io.StringIO())
    assert RELEASE in {r.signature for r in summary.findings}
    assert not list(ws.queue.iterdir())
    _replays(tmp_path / "corpus")


def test_console_prints_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    console = Console(out, every=1000.0)
    console.progress("a", force=True)
    console.progress("b")  # too soon: dropped
    console.say("event")
    assert out.getvalue() == "a\nevent\n"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["atheris", "hypothesis"])
def test_fuzz_job_finds_and_stores_b16(tmp_path, engine):
    if engine == "atheris":
        pytest.importorskip("atheris")
    out = io.StringIO()
    summary = run_job(JobConfig(engine=engine, max_time=4, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work", seed=1), out)
    sigs = {r.signature for r in summary.findings}
    assert RELEASE in sigs, out.getvalue()
    assert summary.exit_code == 1
    assert summary.stats.execs > 0
    files = _replays(tmp_path / "corpus")
    assert len(files) == len(sigs)
    assert "summary" in out.getvalue()


def _start(tmp_path: Path, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [IOMEMFUZZ, "fuzz", "--max-time", str(seconds), "--corpus", str(tmp_path / "corpus"),
         "--workdir", str(tmp_path / "work"), "--seed", "1"],
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
    files = _replays(tmp_path / "corpus")
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
    assert proc.returncode == 1  # findings were made
    assert "(interrupted) summary" in rest
    _replays(tmp_path / "corpus")


def test_coverage_command_reports_model_lines_and_branches(tmp_path):
    from iomemfuzz.fuzz.coverage_report import coverage_report
    from iomemfuzz.fuzz.program import format_program

    (tmp_path / "b16.prog").write_text(format_program(B16))
    (tmp_path / "bytes").mkdir()
    (tmp_path / "bytes" / "one").write_bytes(decode.encode(B16))
    out = io.StringIO()
    totals = coverage_report([tmp_path], byte_dirs=[tmp_path / "bytes"],
                             html=tmp_path / "html", out=out)
    assert totals.programs == 2
    assert 0 < totals.lines_covered < totals.lines
    assert 0 < totals.branches_covered < totals.branches
    report = out.getvalue()
    assert "model/resource.py" in report and "branches" in report
    assert (tmp_path / "html" / "index.html").is_file()
