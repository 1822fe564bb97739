"""The iomemfuzz command: exit codes, messages, JSON and help that users script against."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from iomemfuzz.fuzz import exit_codes
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.commands import build_parser

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "corpus" / "seeds"
FINDING = ROOT / "corpus" / "findings" / "v6.1-deb" / "b11b-resource-seek-end-is-zero.prog"
B16 = ("r0 = __request_region(start=0xfe000000, n=0x100)\n"
       "__release_region(start=0xfe000000, n=0x80)\n")
IOMEMFUZZ = str(Path(sys.executable).parent / "iomemfuzz")


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


def test_unknown_profile_is_a_one_line_usage_error(capsys):
    assert main(["replay", "--profile", "v9.9", str(SEEDS)]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'v9.9'" in err and len(err.strip().splitlines()) == 1


def test_replay_runs_every_file_and_prints_one_summary(tmp_path, capsys):
    for name in ("a.prog", "c.prog"):
        shutil.copy(SEEDS / "tree-claim-release.prog", tmp_path / name)
    (tmp_path / "b.prog").write_text(B16.replace("n=0x80)", "n=0x80 zz)"))
    assert main(["replay", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out.count("passed") == 1
    assert "2 passed, 1 failed (1 unreadable or malformed)" in captured.out
    assert captured.err == f"{tmp_path / 'b.prog'}:2:43: expected ',' or ')', found 'z'\n"


def test_replay_json(tmp_path, capsys):
    shutil.copy(SEEDS / "tree-claim-release.prog", tmp_path / "a.prog")
    (tmp_path / "b.prog").write_text("r0 = nothing()\n")
    assert main(["replay", "--json", str(tmp_path)]) == 2
    report = json.loads(capsys.readouterr().out)
    assert (report["passed"], report["failed"], report["malformed"]) == (1, 1, 1)
    good, bad = report["files"]
    assert good["ok"] and good["profiles"][0] == "v6.1-deb" and good["mismatches"] == []
    assert bad["error"] == {"message": "unknown operation 'nothing'", "line": 1,
                            "column": 6}
    assert report["exit_code"] == 2


def test_show_narrates_each_step_and_exits_0_when_clean(capsys):
    assert main(["show", str(SEEDS / "tree-claim-release.prog")]) == 0
    out = capsys.readouterr().out
    assert "[0] r0 = __request_region(" in out
    assert "/proc/iomem:" in out
    assert "verdict: clean" in out


def test_show_exits_1_on_a_finding_and_speaks_json(capsys):
    assert main(["show", str(FINDING)]) == 1
    assert "verdict: resource-file/seek-end-not-size" in capsys.readouterr().out
    assert main(["show", "--json", str(FINDING)]) == 1
    story = json.loads(capsys.readouterr().out)
    assert story["verdict"] == "finding" and story["findings"]
    assert story["steps"][0]["index"] == 0 and story["steps"][-1]["index"] is None
    first = story["findings"][0]
    assert first["class"] == "userspace"
    assert any(v["signature"] == first["signature"] and v["class"] == "userspace"
               for step in story["steps"] for v in step["violations"])


def test_profiles_is_a_table_in_words(capsys):
    from iomemfuzz.model.profile import PROFILES

    assert main(["profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["PROFILE", "KERNEL", "PARENT"]
    rows = {ln.split()[0]: ln for ln in lines[1:] if not ln.startswith(" ")}
    assert list(rows) == list(PROFILES)  # each name once, in table order
    assert rows["v5.7"].split()[1:3] == ["5.7", "v5.8"]
    assert "nothing is revoked" in rows["v5.7"]
    assert "a claim fails with -EBUSY" in rows["v6.1-deb-claim-fails"]
    text = "\n".join(lines)
    assert "frozenset" not in text and "True" not in text and "False" not in text


def test_profiles_json_and_verbose(capsys):
    assert main(["profiles", "--json"]) == 0
    table = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    relaxed = table["v6.1-deb-relaxed"]
    assert relaxed["parent"] == "v6.1-deb" and relaxed["kernel"] == "6.1.192 (Debian)"
    assert relaxed["differs"]["by_design"]["value"] == ["B28", "B5"]
    assert relaxed["differs"]["iomem_cmdline"]["words"] == "booted with iomem=relaxed"
    assert main(["profiles", "-v"]) == 0
    assert "CONFIG_STRICT_DEVMEM=y" in capsys.readouterr().out


def test_fuzz_json_summary(tmp_path, capsys):
    corpus = tmp_path / "corpus" / "findings" / "v6.1-deb"
    corpus.mkdir(parents=True)
    code = main(["fuzz", "--engine", "hypothesis", "--max-time", "1", "--seed", "0",
                 "--json", "--corpus", str(tmp_path / "corpus"), "--workdir",
                 str(tmp_path / "work")])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert "summary" in captured.err  # progress and the text summary go to stderr
    assert summary["engine"] == "hypothesis" and summary["exit_code"] == code
    assert summary["executions"] > 0
    assert "hypothesis seed" not in captured.err  # --seed 0 is a seed: none was drawn
    for f in summary["findings"]:
        assert Path(f["path"]).is_file() and f["signature"] in f["path"].replace("__", "/")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("iomemfuzz ")


def test_help_has_examples_and_the_exit_code_table(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "iomemfuzz replay corpus/" in out
    for code, _ in exit_codes.TABLE:
        assert f"\n  {code:<4} " in out
    readme = (ROOT / "README.md").read_text()
    for code, text in exit_codes.TABLE:
        assert f"| {code} | {text} |" in readme


def _actions(parser: argparse.ArgumentParser, name: str = "iomemfuzz"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _actions(sub, f"{name} {sub_name}")
        yield name, action


def test_every_argument_has_help_text():
    missing = [f"{name} {a.dest}" for name, a in _actions(build_parser()) if not a.help]
    assert not missing


def test_each_exit_code(tmp_path, capsys, monkeypatch):
    """One command for each row of the table."""
    good = SEEDS / "tree-claim-release.prog"
    assert main(["replay", str(good)]) == exit_codes.OK
    assert main(["show", str(FINDING)]) == exit_codes.FINDING
    assert main(["fuzz", "--jobs", "0"]) == exit_codes.INPUT

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("iomemfuzz.fuzz.replay.check_program", interrupted)
    assert main(["replay", str(good)]) == exit_codes.INTERRUPTED

    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated")

    monkeypatch.setattr("iomemfuzz.fuzz.replay.check_program", broken)
    assert main(["--debug", "replay", str(good)]) == exit_codes.INTERNAL
    capsys.readouterr()


@pytest.mark.parametrize("command", [["profiles", "-v"], ["replay", "-v", "corpus/"]])
def test_a_closed_pipe_ends_quietly(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOMEMFUZZ_")}
    err = tmp_path / "stderr"
    done = subprocess.run(
        ["bash", "-c", f'"$0" {" ".join(command)} 2>"$1" | head -1; '
                       'echo "status ${PIPESTATUS[0]}"', IOMEMFUZZ, str(err)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    first, status = done.stdout.splitlines()
    assert first.startswith(("PROFILE", "ok   "))
    # Killed by SIGPIPE (128 + 13) once head has gone, or done before it went.
    assert status in ("status 141", "status 0")
    assert err.read_text() == ""
