"""Issue 16, point 4: lines end at \\n only (\\r\\n accepted), so every error and every
mismatch names the line an editor shows, whatever other control or Unicode line
separators the comments hold."""

from __future__ import annotations

import pytest
from iomemfuzz.fuzz.cli import main

SEPARATORS = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
NOTES = "".join(f"# note{i} {sep} more\n" for i, sep in enumerate(SEPARATORS))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_errors_and_mismatches_name_the_right_line(tmp_path, capsys, newline):
    bad = tmp_path / "bad.prog"
    bad.write_bytes((NOTES + "\nr0 = __request_region(start=0x1000, n=zz)\n")
                    .replace("\n", newline).encode())
    assert main(["replay", str(bad)]) == 2
    assert f"{bad}:10:39: " in capsys.readouterr().err
    wrong = tmp_path / "wrong.prog"
    wrong.write_bytes((NOTES + "\nr0 = __request_region(start=0xfe000000)  # ok\n"
                       "# comment with \u2028 inside\n"
                       "__release_region(start=0xfe000000)  # EBUSY\n")
                      .replace("\n", newline).encode())
    assert main(["replay", str(wrong)]) == 1
    assert f"{wrong}:12: [v6.1-deb] expected EBUSY, got ok" in capsys.readouterr().out
