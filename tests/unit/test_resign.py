"""``iomemfuzz resign``: expect lines follow renamed signatures; anything more than a
renaming is reported as a change of behaviour."""

from __future__ import annotations

from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.program_file import read_program

OLD = """\
# profile: v6.1-deb-misuse
# expect: finding busy-consistency/release-without-claim
# expect: finding busy-consistency/busy-without-claim
# A wrong-size release, with the signature it had before signatures named functions.

r0 = __request_region(start=0xfe000000, n=0x100)  # ok
__release_region(start=0xfe000000, n=0x80)  # ok
"""


def test_an_old_signature_is_rewritten_to_the_new_one(tmp_path, capsys):
    path = tmp_path / "b16.prog"
    path.write_text(OLD)
    assert main(["resign", "--check", str(path)]) == 0
    program = read_program(str(path))
    assert program.expectations()[None] == (
        "finding busy-consistency/release-without-claim/__release_region/wrong-size",
        "finding busy-consistency/busy-without-claim/__release_region/wrong-size-release")
    assert program.header("class") == "driver-misuse"
    assert "A wrong-size release" in "\n".join(program.notes)  # the rest is kept
    assert "-> finding busy-consistency/release-without-claim/" in capsys.readouterr().out
    assert main(["resign", "--check", str(path)]) == 0  # nothing left to do


def test_a_verdict_that_changed_is_not_a_renaming(tmp_path, capsys):
    path = tmp_path / "b16.prog"
    # The same lines on the default profile: the release does not run (driver contract).
    path.write_text(OLD.replace("v6.1-deb-misuse", "v6.1-deb").replace("  # ok\n", "\n"))
    assert main(["resign", "--check", "--dry-run", str(path)]) == 1
    assert "[behaviour changed]" in capsys.readouterr().out
    assert "busy-consistency/release-without-claim\n" in path.read_text()  # dry run
