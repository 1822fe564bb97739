"""Issue 16, point 7: every argument is checked before anything runs; a bad one is one
line and exit code 2, never a traceback, never silently accepted."""

from __future__ import annotations

import io
import os

import pytest
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.job import JobConfig, run_job
from robust_rig import B16, PROFILE, RELEASE, iomemfuzz, one_line


def _cases(tmp):
    syntax = tmp / "syntax.prog"
    syntax.write_text("r0 = __request_region(start=\n")
    machine = tmp / "machine.prog"
    machine.write_text("# machine: nope\n\n" + B16)
    zzz = tmp / "zzz.prog"
    zzz.write_text("# profile: v6.1:claim_policy=zzz\n\n" + B16)
    good = tmp / "good.prog"
    good.write_text(f"# profile: {PROFILE}\n# expect: finding {RELEASE}\n\n" + B16)
    fuzz = ["fuzz", "--max-time", "1", "--corpus", str(tmp / "corpus"), "--workdir",
            str(tmp / "work")]
    return {
        "max-time nan": ([*fuzz, "--max-time", "nan"], "--max-time"),
        "max-time inf": ([*fuzz, "--max-time", "inf"], "--max-time"),
        "max-time -1": ([*fuzz, "--max-time", "-1"], "--max-time"),
        "jobs 0": ([*fuzz, "--engine", "hypothesis", "--jobs", "0"], "--jobs"),
        "max-len 0": ([*fuzz, "--max-len", "0"], "--max-len"),
        "corpus is a file": (["fuzz", "--corpus", "/etc/passwd", "--workdir",
                              str(tmp / "work")], "/etc/passwd"),
        "workdir cannot be made": ([*fuzz[:5], "--workdir", "/proc/self/nope"],
                                   "/proc/self/nope"),
        "coverage of a missing file": (["coverage", str(tmp / "missing.prog")],
                                       "missing.prog"),
        "coverage of a syntax error": (["coverage", str(syntax)], f"{syntax}:1:"),
        "export from a missing corpus": (["export-seeds", str(tmp / "out"), "--corpus",
                                          "/nonexistent"], "/nonexistent"),
        "unknown machine": (["replay", str(machine)], "qemu-q35"),
        "bad claim_policy in a file": (["replay", str(zzz)], "revoke"),
        "bad claim_policy option": (["replay", "--profile", "v6.1:claim_policy=zzz",
                                     str(good)], "revoke"),
        "bad lockdown": (["replay", "--profile", "v6.1:lockdown=maybe", str(good)],
                         "integrity"),
        "bad iomem_cmdline": (["replay", "--profile", "v6.1:iomem_cmdline=loose",
                               str(good)], "relaxed"),
        "bad revoke_granularity": (["replay", "--profile", "v6.1:revoke_granularity=word",
                                    str(good)], "byte"),
        "minimize into a missing folder": (["minimize", str(good), "-o",
                                            str(tmp / "no" / "dir" / "x.prog")], "no/dir"),
    }


CASES = [
    "max-time nan", "max-time inf", "max-time -1", "jobs 0", "max-len 0",
    "corpus is a file", "workdir cannot be made", "coverage of a missing file",
    "coverage of a syntax error", "export from a missing corpus", "unknown machine",
    "bad claim_policy in a file", "bad claim_policy option", "bad lockdown",
    "bad iomem_cmdline", "bad revoke_granularity", "minimize into a missing folder"]


@pytest.mark.parametrize("case", CASES)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, case):
    argv, mention = _cases(tmp_path)[case]
    assert main(argv) == 2
    assert mention in one_line(capsys.readouterr().err)
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "work").exists() or case == "workdir cannot be made"


@pytest.mark.parametrize("command", ["replay", "show", "minimize", "coverage"])
def test_a_fifo_is_refused_not_read(tmp_path, command):
    fifo = tmp_path / "pipe.prog"
    os.mkfifo(fifo)
    done = iomemfuzz(command, fifo, timeout=20)
    assert done.returncode == 2
    assert "not a regular file" in one_line(done.stderr)


def test_seed_0_is_a_seed(tmp_path):
    # A stand-in target that prints its arguments and cannot start: the job shows its
    # last lines, so the -seed flag libFuzzer was given is visible.
    target = tmp_path / "echo.sh"
    target.write_text('#!/bin/sh\necho "args: $*"\nexit 3\n')
    target.chmod(0o755)
    out = io.StringIO()
    run_job(JobConfig(engine="atheris", max_time=3, seed=0, target=target,
                      corpus=tmp_path / "corpus", workdir=tmp_path / "work"), out)
    args = next(ln for ln in out.getvalue().splitlines() if "args:" in ln)
    assert " -seed=" in args
