"""Issue 16, point 8: Ctrl-C at any moment ends with exit code 130 and no traceback, an
interrupted job says so and exits 130, and an internal error exits 3 with one line saying
where the traceback was written (``--debug``: the traceback itself)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from iomemfuzz.fuzz import cli
from robust_rig import IOMEMFUZZ, ROOT, env, one_line

SIGINT_BIT = 1 << (signal.SIGINT - 1)
SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)


def _ours(pid: int) -> bool:
    """Has the process started running iomemfuzz code? The interpreter, as it starts,
    ignores SIGPIPE and then catches SIGINT; the iomemfuzz package, the first code of the
    project that runs, takes over SIGINT and gives SIGPIPE its default action back. So
    SIGINT caught with SIGPIPE not ignored is a process running iomemfuzz code."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            fields = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)
    except OSError:
        return True  # gone already
    caught, ignored = int(fields["SigCgt"], 16), int(fields["SigIgn"], 16)
    return bool(caught & SIGINT_BIT) and not ignored & SIGPIPE_BIT


@pytest.mark.slow
def test_ctrl_c_in_the_first_0_3_s_is_exit_130_without_a_traceback():
    # Ctrl-C at 0, 20, ..., 300 ms after the start, or as soon after as the process runs
    # iomemfuzz code: before that (the interpreter's own start-up, about 20 ms on an idle
    # machine) nothing of the project exists yet to catch it.
    for i in range(16):
        delay = 0.02 * i
        started = time.monotonic()
        proc = subprocess.Popen([IOMEMFUZZ, "replay", str(ROOT / "corpus")], env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not _ours(proc.pid) and time.monotonic() - started < 10:
            time.sleep(0.001)
        time.sleep(max(0.0, started + delay - time.monotonic()))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and "Error" not in err, (delay, err)
        assert proc.returncode == 130, (delay, proc.returncode, err)
        assert err == "iomemfuzz: interrupted\n", (delay, err)


@pytest.mark.slow
def test_an_interrupted_job_exits_130_with_its_summary(tmp_path):
    proc = subprocess.Popen(
        [IOMEMFUZZ, "fuzz", "--engine", "hypothesis", "--max-time", "60", "--corpus",
         str(tmp_path / "corpus"), "--workdir", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("iomemfuzz fuzz:")
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "(interrupted) summary" in out
    assert "Traceback" not in err


def test_an_internal_error_exits_3_with_one_line_and_the_traceback_kept(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr("iomemfuzz.fuzz.replay.check_program", broken)
    good = ROOT / "corpus" / "seeds" / "tree-claim-release.prog"
    assert cli.main(["replay", str(good)]) == 3
    line = one_line(capsys.readouterr().err)
    assert "internal error" in line and "simulated bug" in line
    written = re.search(r"traceback in (\S+)$", line)
    assert written, line
    kept = Path(written.group(1))
    assert "RuntimeError: simulated bug" in kept.read_text(encoding="utf-8")
    kept.unlink()
    assert cli.main(["--debug", "replay", str(good)]) == 3
    assert "Traceback" in capsys.readouterr().err
