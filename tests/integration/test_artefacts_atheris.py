"""A crash file written by a real atheris/libFuzzer run of the packaged target becomes a
corpus finding that ``iomemfuzz replay`` reproduces; ``iomemfuzz fuzz --merge`` shrinks the
work corpus with libFuzzer's own merge. Each test runs the target for a few seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.artefacts import merge_work_corpus
from iomemfuzz.fuzz.corpus import finding_path
from iomemfuzz.fuzz.job_config import DEFAULT_TARGET
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.workspace import Workspace

BIN = Path(sys.executable).parent
# B16 is a finding where callers may break their contract: the misuse profile.
PROFILE = "v6.1-deb-misuse"
RELEASE = "busy-consistency/release-without-claim/__release_region/wrong-size"
# Catalog B16: a driver releases half of what it claimed.
B16 = parse_program("r0 = __request_region(start=0xfe000000, n=0x100)\n"
                    "__release_region(start=0xfe000000, n=0x80)\n")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOMEMFUZZ_")}
    # The target is started by its path; its `env python3` must be this interpreter.
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_a_libfuzzer_crash_file_imports_into_a_finding_that_replays(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "b16").write_bytes(textinput.write_program(B16))
    known = tmp_path / "known"
    known.write_text("")
    # Standalone mode (no IOMEMFUZZ_QUEUE): the violation raises and libFuzzer writes the
    # input as crash-<sha1>, exactly as under ClusterFuzzLite.
    run = subprocess.run(
        [str(DEFAULT_TARGET), str(inputs), "-runs=10", f"-artifact_prefix={tmp_path}/"],
        env=_env(IOMEMFUZZ_KNOWN=str(known), IOMEMFUZZ_PROFILE=PROFILE), cwd=tmp_path,
        capture_output=True, text=True,
        timeout=120, check=False)
    crashes = sorted(tmp_path.glob("crash-*"))
    assert run.returncode != 0 and len(crashes) == 1, run.stdout + run.stderr
    assert f"FindingError: finding {RELEASE}" in run.stdout + run.stderr

    corpus = tmp_path / "corpus"
    imported = subprocess.run(
        [str(BIN / "iomemfuzz"), "import-crash", "--corpus", str(corpus), "--profile", PROFILE,
         str(crashes[0])],
        env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    stored = finding_path(corpus, PROFILE, RELEASE)
    assert f"new finding {RELEASE} -> {stored}" in imported.stdout

    replay = subprocess.run([str(BIN / "iomemfuzz"), "replay", str(stored)], env=_env(),
                            capture_output=True, text=True, timeout=120, check=False)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "1 passed, 0 failed" in replay.stdout


def test_merge_keeps_a_smaller_corpus_with_the_same_features(tmp_path, capsys):
    ws = Workspace(tmp_path / "work", "v6.1-deb")
    clean = parse_program("r0 = __request_region(start=0xfe000000, n=0x100)\n"
                          "iomem_is_exclusive(addr=0xfe000010)\n")
    # The same behaviour many times over (values the model treats alike) and one input
    # reaching more of it.
    for i in range(12):
        ops = parse_program(f"iomem_is_exclusive(addr={0x2000 + i:#x})\n").ops
        (ws.corpus / f"same-{i}").write_bytes(textinput.write(ops))
    (ws.corpus / "more").write_bytes(textinput.write_program(clean))
    result = merge_work_corpus(tmp_path / "work", "v6.1-deb")
    assert result.exit_code == 0, str(result)
    kept = sorted(ws.corpus.iterdir())
    assert result.before == 13 and result.after == len(kept) < 13
    assert any(textinput.read(p.read_bytes()).ops == clean.ops for p in kept)
    assert not (ws.root / "corpus.merging").exists()
    assert not (ws.root / "corpus.old").exists()
    assert "merged" in str(result) and "13 ->" in str(result)


def test_fuzz_merge_on_the_command_line(tmp_path):
    ws = Workspace(tmp_path / "work", "v6.1-deb")
    for i in range(3):
        ops = parse_program(f"iomem_is_exclusive(addr={0x3000 + i:#x})\n").ops
        (ws.corpus / f"x{i}").write_bytes(textinput.write(ops))
    merged = subprocess.run(
        [str(BIN / "iomemfuzz"), "fuzz", "--merge", "--workdir", str(tmp_path / "work")],
        env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "merged" in merged.stdout and "3 ->" in merged.stdout
