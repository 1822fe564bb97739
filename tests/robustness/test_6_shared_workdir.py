"""Issue 16, point 6: a second job on a workdir a live job holds is refused with a message
naming the other job's pid; a lock left by a dead job is taken over."""

from __future__ import annotations

import signal
import subprocess

import pytest
from robust_rig import IOMEMFUZZ, env, iomemfuzz, one_line


@pytest.mark.slow
def test_a_held_workdir_is_refused_naming_the_holder(tmp_path):
    work = tmp_path / "work"
    first = subprocess.Popen(
        [IOMEMFUZZ, "fuzz", "--engine", "hypothesis", "--max-time", "60", "--corpus",
         str(tmp_path / "c1"), "--workdir", str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
    try:
        assert first.stdout is not None
        banner = first.stdout.readline()
        assert banner.startswith("iomemfuzz fuzz:"), banner
        second = iomemfuzz("fuzz", "--engine", "hypothesis", "--max-time", "2", "--corpus",
                           tmp_path / "c2", "--workdir", work, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {first.pid}" in one_line(second.stderr)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    # The first job is gone: its lock is stale and taken over.
    third = iomemfuzz("fuzz", "--engine", "hypothesis", "--max-time", "1", "--corpus",
                      tmp_path / "c3", "--workdir", work, timeout=60)
    assert third.returncode in (0, 1), third.stdout + third.stderr
