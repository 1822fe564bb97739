"""Issue 16, point 3: no input makes the reader slow. The issue's 100,000-space header
line took 70 s; a 10 MB file did not finish in 120 s."""

from __future__ import annotations

import resource

from robust_rig import iomemfuzz, one_line


def test_long_header_lines_and_huge_files_are_refused_at_once(tmp_path):
    spaces = tmp_path / "spaces.prog"
    spaces.write_text("# note: a" + " " * 100_000 + "b\n")
    huge = tmp_path / "huge.prog"
    huge.write_text(("# note: a" + " " * 1000 + "b\n") * 10_000)
    for path in (spaces, huge):
        # CPU seconds of the child, not the wall clock: other work on the machine must not
        # count (the bug this guards against took 70 s of CPU).
        before = _child_cpu()
        done = iomemfuzz("replay", path, timeout=60)
        assert _child_cpu() - before < 5
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr).startswith(f"{path}:")


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
