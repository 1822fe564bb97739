"""What the fuzz-job tests share (tests/unit/test_job.py, tests/integration/test_fuzz_jobs.py):
B16's Program and signatures on the profile where it is a finding, the installed command,
and the check that every finding a job stored replays."""

from __future__ import annotations

import sys
from pathlib import Path

from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.replay import check_program

GAP = 0xFE000000
# B16 is found where callers may break their contract (a release of what they never
# requested, or with another length): the misuse profile.
PROFILE = "v6.1-deb-misuse"
RELEASE = "busy-consistency/release-without-claim/__release_region/wrong-size"
RELEASES = "busy-consistency/release-without-claim/"
B16 = parse_program(f"r0 = __request_region(start={GAP:#x}, n=0x100)\n"
                    f"__release_region(start={GAP:#x}, n=0x80)\n")
IOMEMFUZZ = str(Path(sys.executable).parent / "iomemfuzz")


def replays(corpus: Path) -> list[Path]:
    """The finding files under ``corpus``, each checked to replay as it says."""
    files = list(program_files([corpus / "findings"]))
    for path in files:
        text = path.read_text()
        result = check_program(parse_program(text, str(path)), str(path), text)
        assert result.ok, [str(m) for m in result.mismatches]
    return files
