"""Pictures: the data behind each is right, the files are written and not trivial, the
commands behave, and drawing stays off the fuzzing path."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from iomemfuzz.fuzz import fuzz_stats, iomem_map, lanes
from iomemfuzz.fuzz import matrix as mx
from iomemfuzz.fuzz.catalog import Catalog, load
from iomemfuzz.fuzz.cli import main
from iomemfuzz.fuzz.executor import run
from iomemfuzz.fuzz.job import JobConfig, Stats, run_job
from iomemfuzz.fuzz.program_file import read_program

ROOT = Path(__file__).resolve().parents[2]
B1 = ROOT / "corpus/findings/v6.1-deb/b1-pci-sysfs-init-meets-async-bus-add.prog"
B15 = ROOT / "corpus/findings/v6.1-deb/b15-claim-revokes-mapping.prog"


def _picture(path: Path, *words: str) -> None:
    data = path.read_bytes()
    assert len(data) > 5000, f"{path} is nearly empty"
    if path.suffix == ".png":
        assert data.startswith(b"\x89PNG")
    else:
        text = data.decode("utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text
        for w in words:
            assert w in text, f"{w!r} not drawn in {path}"


# --- lanes ------------------------------------------------------------------------------


def test_recording_the_slices_changes_nothing_the_run_does():
    program = read_program(str(B1))
    rec = lanes.record(program)
    plain = run(program)
    assert [v["signature"] for v in rec.violations] == [v.signature for v in plain.violations]
    assert [ln["outcome"] for ln in rec.lines[:-1]] == [
        s.outcome.label for s in plain.steps[:-1]]


def test_b1_lanes_show_the_interleaving_and_mark_the_duplicate():
    d = lanes.data(lanes.record(read_program(str(B1))))
    names = {t["id"]: t["name"] for t in d["tasks"]}
    assert names[1] == "kernel_init" and "pci_host_probe 0001:00" in names.values()
    probe = next(i for i, n in names.items() if n.startswith("pci_host_probe"))
    rows = d["rows"]
    points = [(r["task"], r.get("point", "")) for r in rows]
    parked = points.index((probe, "pci_bus_add_device: before pci_create_sysfs_dev_files "
                                  "(0001:00:00.0)"))
    flag = points.index((1, "pci_sysfs_init: sysfs_initialized = 1"))
    assert parked < flag  # the probe stopped in the gap, then the initcall ran
    first = next(i for i, r in enumerate(rows) if r["kind"] == "violation")
    assert rows[first]["signature"].startswith("duplicate-attributes/duplicate-filename/")
    assert rows[first]["task"] == probe
    assert "cannot create duplicate filename" in rows[first - 1]["events"][0]
    assert d["violations"] == 5 == sum(r["kind"] == "violation" for r in rows)
    # Every Program line spans its rows, in order.
    spans = [ln["rows"] for ln in d["lines"]]
    assert spans[0][0] == 0 and spans[-1][1] == len(rows) - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))


def test_long_uneventful_runs_are_shortened_unless_everything_is_asked():
    rec = lanes.record(read_program(str(B1)))
    short, full = lanes.data(rec), lanes.data(rec, everything=True)
    gaps = [r for r in short["rows"] if r["kind"] == "gap"]
    assert gaps and not [r for r in full["rows"] if r["kind"] == "gap"]
    slices = sum(r["kind"] == "slice" for r in short["rows"]) + sum(g["count"] for g in gaps)
    assert slices == len(rec.slices) == sum(r["kind"] == "slice" for r in full["rows"])


def test_show_lanes_draws_b1(tmp_path):
    out = tmp_path / "race.svg"
    # Exit 1: the picture is drawn, and the run it draws shows a finding (as plain show).
    assert main(["show", "--lanes", str(B1), "-o", str(out)]) == 1
    _picture(out, "pci_sysfs_init: sysfs_initialized = 1", "kernel_init",
             "duplicate-attributes/duplicate-filename/pci_create_attr")
    png = tmp_path / "race.png"
    assert main(["show", "--lanes", "--all", str(B1), "-o", str(png)]) == 1
    _picture(png)


# --- /proc/iomem -------------------------------------------------------------------------


def test_iomem_data_shows_the_claim_and_the_revoked_mapping():
    d = iomem_map.data(read_program(str(B15)), 2)
    assert d["op"] == "r2 = request_mem_region(start=0xfe000000)" and d["outcome"] == "ok"
    new = [n for n in d["after"]["nodes"] if n not in d["before"]["nodes"]]
    assert [(n["name"], n["start"], n["busy"]) for n in new] == [("drv", 0xFE000000, True)]
    (before,), (after,) = d["before"]["mappings"], d["after"]["mappings"]
    assert before["live"] == [[0xFE000000, 0xFE000FFF]] and after["live"] == []
    # Only the top-level range that changed is drawn.
    assert d["window"] == [[0xC0000000, 0xFEBFFFFF]]
    with pytest.raises(iomem_map.StepError):
        iomem_map.data(read_program(str(B15)), 99)


def test_show_iomem_draws_and_rejects_a_bad_step(tmp_path):
    out = tmp_path / "iomem.svg"
    assert main(["show", "--iomem", "2", str(B15), "-o", str(out)]) == 0  # no finding
    assert main(["show", "--iomem", "1", str(B1), "-o", str(tmp_path / "b1.svg")]) == 1
    _picture(out, "drv (new)", "revoked", "PCI Bus 0000:00")
    assert main(["show", "--iomem", "99", str(B15), "-o", str(out)]) == 2
    assert main(["show", "--iomem", "2", str(B15), "-o", str(tmp_path / "x.gif")]) == 2


# --- stats.json and plot -----------------------------------------------------------------


class _Reported:
    def __init__(self, elapsed: float, length: int = 3) -> None:
        self.elapsed = elapsed
        self.length = length


def test_stats_file_keeps_a_time_series_and_stays_small(tmp_path, monkeypatch):
    monkeypatch.setattr(fuzz_stats, "MAX_POINTS", 20)
    path = tmp_path / "w" / "stats.json"
    sf = fuzz_stats.StatsFile(path, engine="atheris", profile="v6.1-deb", max_time=60,
                              jobs=1, every=1.0)
    stats = Stats(execs=10, exec_s=5, cov=100, ft=200, corpus=3)
    assert sf.tick(0.0, stats, {})
    assert not sf.tick(0.5, stats, {})  # too soon
    assert sf.tick(0.5, stats, {"a/b/c": _Reported(0.4)}, force=True)
    doc = fuzz_stats.load(path)
    assert doc["findings"] == 1 and doc["found"] == [{"signature": "a/b/c", "t": 0.4,
                                                      "length": 3}]
    assert [p["t"] for p in doc["series"]] == [0.0, 0.5]
    for t in range(2, 3 * fuzz_stats.MAX_POINTS):
        sf.tick(float(t) * 4, stats, {})
    assert len(fuzz_stats.load(path)["series"]) <= fuzz_stats.MAX_POINTS
    assert fuzz_stats.find(tmp_path) == [path] and fuzz_stats.find(path.parent) == [path]
    path.write_text("{}")
    with pytest.raises(fuzz_stats.StatsError):
        fuzz_stats.load(path)


def test_a_fuzz_job_writes_stats_json_and_plot_draws_it(tmp_path):
    run_job(JobConfig(engine="atheris", max_time=0, corpus=tmp_path / "corpus",
                      workdir=tmp_path / "work"), io.StringIO())
    path = tmp_path / "work" / "v6.1-deb" / "stats.json"
    doc = json.loads(path.read_text())
    assert doc["engine"] == "atheris" and doc["profile"] == "v6.1-deb"
    assert doc["series"] and {"t", "execs", "cov", "findings"} <= set(doc["series"][-1])
    out = tmp_path / "progress.png"
    assert main(["plot", str(tmp_path / "work"), "-o", str(out)]) == 0
    _picture(out)
    assert main(["plot", str(tmp_path / "nothing")]) == 2


def test_plot_of_the_committed_example(tmp_path):
    out = tmp_path / "p.svg"
    assert main(["plot", str(ROOT / "docs" / "fuzz-stats.json"), "-o", str(out)]) == 0
    _picture(out, "coverage", "new findings")


# --- matrix command and import cost ------------------------------------------------------


def test_matrix_command_prints_json_and_draws(tmp_path, capsys, monkeypatch):
    # Two entries are enough for the command; tests/unit/test_matrix.py runs them all.
    full = mx.compute
    two = Catalog(tuple(e for e in load() if e.id in ("B1", "B16")), {})
    monkeypatch.setattr(mx, "compute", lambda: full(two))
    pictures = [tmp_path / "m.png", tmp_path / "m.svg"]
    args = ["matrix", "--json"] + [a for p in pictures for a in ("--picture", str(p))]
    assert main(args) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["groups"][0]["key"] == "design"
    assert "reproducers x" in captured.err
    _picture(pictures[0])
    _picture(pictures[1], "B1", "v6.1-deb-claim-fails", "Which kernels have it?")
    assert main(["matrix", "--picture", str(tmp_path / "m.txt")]) == 2


def test_fuzzing_and_the_cli_do_not_import_matplotlib():
    code = ("import sys, iomemfuzz.fuzz.cli, iomemfuzz.fuzz.job, iomemfuzz.fuzz.executor, "
            "iomemfuzz.fuzz.matrix, iomemfuzz.fuzz.lanes, iomemfuzz.fuzz.reports, "
            "iomemfuzz.fuzz.pictures.docs; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
