"""The iomemfuzz command: exit codes and messages users script against."""

from __future__ import annotations

import shutil
from pathlib import Path

from iomemfuzz.fuzz.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "corpus" / "seeds"


def test_replay_corpus_passes(capsys):
    assert main(["replay", str(ROOT / "corpus")]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_wrong_expectation_exits_1_naming_file_and_line(tmp_path, capsys):
    src = SEEDS / "tree-claim-release.prog"
    copy = tmp_path / "wrong.prog"
    shutil.copy(src, copy)
    lines = copy.read_text().splitlines()
    index = next(i for i, ln in enumerate(lines) if ln.endswith("# ok"))
    lines[index] = lines[index][: -len("# ok")] + "# EBUSY"
    copy.write_text("\n".join(lines) + "\n")
    assert main(["replay", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"{copy}:{index + 1}: [v6.1-deb] expected EBUSY, got ok" in out


def test_syntax_error_exits_2_with_position(tmp_path, capsys):
    bad = tmp_path / "bad.prog"
    bad.write_text("__request_region(start=0x1000\n")
    assert main(["replay", str(bad)]) == 2
    assert f"{bad}:1:30:" in capsys.readouterr().err


def test_unknown_profile_is_a_usage_error(capsys):
    try:
        main(["replay", "--profile", "v9.9", str(SEEDS)])
    except SystemExit as exc:
        assert exc.code == 2
    assert "unknown profile 'v9.9'" in capsys.readouterr().err


def test_show_narrates_each_step(capsys):
    assert main(["show", str(SEEDS / "tree-claim-release.prog")]) == 0
    out = capsys.readouterr().out
    assert "[0] r0 = __request_region(" in out
    assert "/proc/iomem:" in out
    assert "verdict: clean" in out


def test_profiles_lists_every_profile(capsys):
    from iomemfuzz.model.profile import PROFILES

    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in PROFILES:
        assert f"{name}: " in out
