"""Issue 16, point 5: a disk that refuses a write (read-only corpus, full workdir, file size
limit) ends the job with its summary, the list of findings it could not store and where it
kept them, and exit code 2; nothing it found is lost."""

from __future__ import annotations

import errno
import io
import resource
import tempfile

import pytest
from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.job import JobConfig, run_job
from iomemfuzz.fuzz.program_parse import parse_program
from robust_rig import B16, PROFILE, RELEASE, iomemfuzz


def _refuse(monkeypatch, folder, code):
    """Writes (temporary files) under ``folder`` fail with ``code``."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if str(kwargs.get("dir", "")).startswith(str(folder)):
            raise OSError(code, f"{errno.errorcode[code]} (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def _queue_b16(work):
    queue = work / PROFILE / "queue"
    queue.mkdir(parents=True)
    (queue / "left-over.prog").write_bytes(textinput.write_program(parse_program(B16)))
    return queue


def test_read_only_corpus_keeps_the_finding_queued_and_the_next_job_stores_it(
        tmp_path, monkeypatch, capsys):
    queue = _queue_b16(tmp_path / "work")
    cfg = JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                    workdir=tmp_path / "work", profile=PROFILE)
    _refuse(monkeypatch, tmp_path / "corpus", errno.EROFS)
    out = io.StringIO()
    summary = run_job(cfg, out)
    text = out.getvalue() + capsys.readouterr().err
    assert summary.exit_code == 2
    assert "summary" in text
    assert f"could not store {RELEASE}" in text and str(queue) in text
    assert (queue / "left-over.prog").is_file()
    monkeypatch.undo()
    summary = run_job(cfg, io.StringIO())
    assert RELEASE in {r.signature for r in summary.findings}


def test_full_workdir_prints_the_error_program_instead(tmp_path, monkeypatch, capsys):
    artifacts = tmp_path / "work" / PROFILE / "artifacts"
    artifacts.mkdir(parents=True)
    crash = artifacts / "crash-0123"
    crash.write_bytes(textinput.write_program(parse_program(B16)))
    _refuse(monkeypatch, tmp_path / "work" / PROFILE / "errors", errno.ENOSPC)
    out = io.StringIO()
    summary = run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work", profile=PROFILE), out)
    err = capsys.readouterr().err
    assert summary.exit_code == 2
    assert "summary" in out.getvalue()
    assert "__request_region(start=0xfe000000, n=0x100)" in err  # the Program, as text
    assert crash.is_file()  # and the artefact itself stays


def _limit_file_size():
    # Smaller than the inputs dictionary the job writes first: the job meets the limit
    # before libFuzzer starts.
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))


@pytest.mark.slow
def test_file_size_limit_ends_the_job_with_a_summary_and_exit_2(tmp_path):
    """The real limit: the kernel sends SIGXFSZ and the write fails with EFBIG; the job
    must take the error, not die of the signal."""
    pytest.importorskip("atheris")
    done = iomemfuzz("fuzz", "--max-time", "10", "--seed", "1", "--corpus",
                     tmp_path / "corpus", "--workdir", tmp_path / "work", "--profile", PROFILE,
                     timeout=60, preexec_fn=_limit_file_size)
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text
    assert done.returncode == 2, text
    assert "summary" in done.stdout
    # Which write meets the limit first depends on the engine (libFuzzer's dictionary, the
    # workers' shared counters): either way the job names the error.
    assert "stopped by a write that failed:" in text and "File too large" in text


@pytest.mark.slow
def test_a_finding_too_large_to_store_stays_queued_for_the_next_job(tmp_path, monkeypatch,
                                                                   capsys):
    pytest.importorskip("atheris")
    cfg = JobConfig(engine="atheris", max_time=10, seed=1, corpus=tmp_path / "corpus",
                    workdir=tmp_path / "work", profile=PROFILE)
    _refuse(monkeypatch, tmp_path / "corpus", errno.EFBIG)
    out = io.StringIO()
    summary = run_job(cfg, out)
    text = out.getvalue() + capsys.readouterr().err
    assert summary.exit_code == 2, text
    assert "summary" in text
    # The job finds one mechanism of B16 or another (a release of a region nobody holds,
    # or with the wrong length): what matters is that it is kept.
    releases = RELEASE.rsplit("/", 2)[0] + "/"
    assert f"could not store {releases}" in text and "EFBIG" in text, text
    monkeypatch.undo()
    # Kept in the queue: the next job, on a disk that takes it, stores it.
    summary = run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                                workdir=tmp_path / "work", profile=PROFILE), io.StringIO())
    assert any(r.signature.startswith(releases) for r in summary.findings)
