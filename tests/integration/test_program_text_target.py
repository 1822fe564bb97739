"""The Program reader's fuzz target (fuzz/targets/program_text.py) runs 100,000 inputs with
no escape: every input reads as a Program or fails with the documented syntax error, and
every Program read has a canonical text that reads back the same.

This is CI's bounded run of the target ClusterFuzzLite also fuzzes (.clusterfuzzlite/
build.sh). Fixed seed, the corpus files as seeds, the grammar dictionary; inputs up to 1 KB
(the packaged target allows 4 KB) keep the run at about 20 s."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "fuzz" / "targets" / "program_text.py"
DICT = ROOT / ".clusterfuzzlite" / "program_text.dict"
RUNS = 100_000


@pytest.mark.slow
def test_reader_target_runs_100000_inputs_without_an_escape(tmp_path):
    pytest.importorskip("atheris")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for prog in sorted(ROOT.glob("corpus/**/*.prog")):
        data = prog.read_bytes()
        (seeds / hashlib.sha1(data).hexdigest()).write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOMEMFUZZ_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(TARGET), f"-runs={RUNS}", "-seed=1", "-max_len=1024", f"-dict={DICT}",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(seeds)],
        cwd=tmp_path, env=env, capture_output=True, text=True, errors="replace",
        timeout=900, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert f"Done {RUNS} runs" in log, log[-4000:]
    assert not list(tmp_path.glob("crash-*"))


def test_the_dictionary_is_current():
    tool = ROOT / "tools" / "cflite" / "program_text_dict.py"
    made = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True,
                          check=True).stdout
    assert made == DICT.read_text(), f"stale: run {tool} > {DICT}"
