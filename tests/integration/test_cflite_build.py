""".clusterfuzzlite/build.sh, run as ClusterFuzzLite runs it (tools/cflite_local_build.sh:
SRC/OUT/WORK set, the checkout copied to $SRC/iomemfuzz, a Python with atheris, the
compile_python_fuzzer stand-in), leaves in $OUT a runnable target per fuzz/targets script,
its seed corpus zip and options; the script itself smoke-runs each target (-runs=100).

About 25 s with the virtualenv cached in work/cflite/venv, under a minute on a fresh
checkout (it installs atheris from the package index once)."""

from __future__ import annotations

import configparser
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.program_file import parse_program_bytes

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "cflite_local_build.sh"
TARGETS = sorted(p.stem for p in (ROOT / "fuzz" / "targets").glob("*.py")
                 if os.access(p, os.X_OK) and not p.stem.startswith("_"))


@pytest.mark.slow
def test_build_sh_produces_runnable_targets_with_seeds_and_options(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOMEMFUZZ_")}
    # The build's Python (its virtualenv is made once) is the one running the tests.
    env["IOMEMFUZZ_CFLITE_PYTHON"] = sys.executable
    run = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert TARGETS
    for name in TARGETS:
        assert f"ok   {name}:" in run.stdout
        wrapper = out / name
        assert os.access(wrapper, os.X_OK)
        # Engines recognise targets by this marker and their executable bit.
        assert "LLVMFuzzerTestOneInput" in wrapper.read_text()
        assert (out / f"{name}.pkg").is_file()
        with zipfile.ZipFile(out / f"{name}_seed_corpus.zip") as seeds:
            names = seeds.namelist()
            assert names
            for member in names:
                data = seeds.read(member)
                assert member == hashlib.sha1(data).hexdigest()
                if name == "program_text":
                    assert parse_program_bytes(data).lines  # a corpus file, as it is
                else:
                    assert textinput.read(data).ops  # Program text
        options = configparser.ConfigParser()
        options.read(out / f"{name}.options")
        assert options["libfuzzer"]["max_len"] == "4096"
        if name == "program_text":
            # The reader's target reads text: the grammar's words are its dictionary.
            dictionary = ROOT / ".clusterfuzzlite" / "program_text.dict"
            assert (out / f"{name}.dict").read_text() == dictionary.read_text()
        else:
            # The Program vocabulary, in libFuzzer's dictionary format (see build.sh).
            assert '"open_devmem()\\x0A"' in (out / f"{name}.dict").read_text()
    assert {"kernel_ops", "program_text"} <= set(TARGETS)
