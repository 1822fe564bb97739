"""The parts of a fuzz job that need no process: libFuzzer's status lines, the finding
sink (minimized, deduplicated, written before reported; shorter routes replace what a
job wrote, never a hand-written file), re-finds, the console. Whole jobs are in
tests/integration/test_fuzz_jobs.py."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from iomemfuzz.fuzz import textinput
from iomemfuzz.fuzz.console import Console
from iomemfuzz.fuzz.corpus import safe_name
from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_format import format_program
from iomemfuzz.fuzz.program_parse import parse_program
from iomemfuzz.fuzz.sink import FindingSink, known_signatures
from iomemfuzz.fuzz.summary import Stats, Summary, format_summary
from iomemfuzz.fuzz.supervisor import parse_status
from iomemfuzz.fuzz.targets import SHORTEN, Refinds, read_known, refind_name
from iomemfuzz.fuzz.workspace import Workspace
from job_rig import B16, PROFILE, RELEASE, replays

# Captured from atheris 3.0.0 running fuzz/targets/kernel_ops.py (plain mode, two
# processes sharing a corpus, then -fork=2), tabs and spacing as printed.
PLAIN = [
    "#2\tINITED cov: 662 ft: 759 corp: 1/1b exec/s: 0 rss: 52Mb",
    "#1567\tREDUCE cov: 1306 ft: 2695 corp: 187/10846b lim: 512 exec/s: 195 rss: 53Mb "
    "L: 101/179 MS: 3 CustomCrossOver-Custom-CustomCrossOver-",
    "#2048\tpulse  cov: 1607 ft: 4268 corp: 380/34Kb lim: 512 exec/s: 146 rss: 53Mb",
    "#4218\tDONE   cov: 1676 ft: 4701 corp: 462/44Kb lim: 512 exec/s: 136 rss: 55Mb",
    # Inputs another worker wrote to the shared corpus, read back (-reload).
    "#190\tRELOAD cov: 574 ft: 1325 corp: 68/2411b lim: 512 exec/s: 190 rss: 53Mb",
]
FORK = "#3652: cov: 4010 ft: 4988 corp: 404 exec/s 115 oom/timeout/crash: 0/0/0 time: 25s " \
       "job: 6 dft_time: 0"
NOT_STATUS = ["INFO: Seed: 1", "###### Recommended dictionary. ######",
              '"\\377\\377\\377\\377" # Uses: 3', "KeyboardInterrupt: stopping.",
              "INFO: seed corpus: files: 495 min: 2b max: 473b total: 47283b rss: 52Mb"]


@pytest.mark.parametrize("line, expected", [
    (PLAIN[0], (2, 662, 759, 1)),
    (PLAIN[1], (1567, 1306, 2695, 187)),
    (PLAIN[2], (2048, 1607, 4268, 380)),
    (PLAIN[3], (4218, 1676, 4701, 462)),
    (PLAIN[4], (190, 574, 1325, 68)),
    (FORK, (3652, 4010, 4988, 404)),
])
def test_parse_status_reads_real_plain_and_fork_lines(line, expected):
    stats = Stats()
    assert parse_status(line + "\n", stats)
    assert (stats.execs, stats.cov, stats.ft, stats.corpus) == expected


def test_parse_status_ignores_other_lines_and_takes_the_final_count():
    stats = Stats()
    parse_status(PLAIN[3], stats)
    for line in NOT_STATUS:
        assert not parse_status(line, stats)
    assert stats.execs == 4218
    # -print_final_stats=1: exact, where the last status line may lag behind.
    assert parse_status("stat::number_of_executed_units: 4230", stats)
    assert (stats.execs, stats.cov) == (4230, 1676)


def test_sink_minimizes_writes_then_dedups(tmp_path):
    out = io.StringIO()
    sink = FindingSink(tmp_path, PROFILE, "test", Console(out, 1.0), time.monotonic(), 500)
    sink.handle(B16)
    assert RELEASE in sink.reported
    files = replays(tmp_path)
    assert len(files) == len(sink.reported)
    assert f"finding {RELEASE}" in out.getvalue()
    first = sink.reported[RELEASE].path.read_text()
    sink.handle(B16)  # the same signature again: nothing new
    assert sink.reported[RELEASE].path.read_text() == first
    assert out.getvalue().count(f"finding {RELEASE} ") == 1
    # A later job knows it from the corpus and does not report it again.
    assert RELEASE in known_signatures(tmp_path, PROFILE)
    again = FindingSink(tmp_path, PROFILE, "test", Console(io.StringIO(), 1.0),
                        time.monotonic(), 500)
    again.handle(B16)
    assert RELEASE not in again.reported


B5_PROFILE = "v6.1-deb-no-io-strict:by_design="
UNREVOKED = "mapping-survival/reaches-claimed/revoke_iomem/io-strict-off"
# Two routes to B5: through sysfs (5 lines, the one a job usually meets first) and
# through /dev/mem (4 lines). Deleting lines cannot turn one into the other.
B5_SYSFS = parse_program(
    'r0 = hotadd(dev="0000:00:03.0")\nr1 = open_resource(dev="0000:00:03.0")\n'
    'r2 = mmap(file=r1)\nr3 = module_load(driver="drv", ids="1b36:0005")\n'
    'touch(vma=r2)\n')
B5_DEVMEM = parse_program(
    "r0 = open_devmem()\nr1 = mmap(file=r0, offset=0x80000000)\n"
    "r2 = __request_region(start=0x80000000)\ntouch(vma=r1)\n"
    # Padding the minimizer removes.
    "r3 = request_mem_region(start=0xfe000000, n=0x10)\n")


def _b5_sink(corpus: Path, out: io.StringIO) -> FindingSink:
    return FindingSink(corpus, B5_PROFILE, "test", Console(out, 1.0), time.monotonic(), 500)


def test_a_shorter_route_replaces_the_stored_reproducer(tmp_path):
    out = io.StringIO()
    sink = _b5_sink(tmp_path, out)
    sink.handle(B5_SYSFS)
    rep = sink.reported[UNREVOKED]
    assert rep.length == 5
    # What the target queues: the signature is read back from the file name.
    ws = Workspace(tmp_path / "work", B5_PROFILE)
    (ws.queue / refind_name(UNREVOKED, b"x")).write_bytes(
        textinput.write_program(B5_DEVMEM))
    sink.drain(ws.queue)
    assert not list(ws.queue.iterdir())
    assert (rep.length, rep.first_length) == (4, 5)
    stored = read_program(str(rep.path))
    assert [type(o).NAME for o in stored.ops] == [
        "open_devmem", "mmap", "__request_region", "touch"]
    assert f"shorter reproducer for {UNREVOKED}: 5 -> 4 ops" in out.getvalue()
    assert "replacing a 5-operation reproducer" in rep.path.read_text()
    replays(tmp_path)
    # A longer route never replaces a shorter one.
    sink.shorten(B5_SYSFS, UNREVOKED)
    assert read_program(str(rep.path)).ops == stored.ops
    # A later job may shorten what an earlier job wrote, tells its target so, and lists
    # what it shortened in its summary.
    later = _b5_sink(tmp_path, io.StringIO())
    assert f"{UNREVOKED}\t{SHORTEN}" in later.known_lines()
    known, shorten = read_known_file(later.known_lines(), tmp_path / "known")
    assert UNREVOKED in known and UNREVOKED in shorten
    rep.path.write_text(rep.path.read_text().replace(
        "r1 = mmap(", "r9 = request_mem_region(start=0xfe000000, n=0x10)\nr1 = mmap("))
    later.shorten(B5_DEVMEM, UNREVOKED)
    assert later.shortened == {UNREVOKED: (5, 4, rep.path)}
    assert not later.reported
    summary = Summary("atheris", B5_PROFILE, 1.0, Stats(),
                      shortened=[(UNREVOKED, 5, 4, rep.path)])
    assert f"{UNREVOKED}  5 -> 4 ops" in format_summary(summary)
    assert summary.exit_code == 0


def read_known_file(lines: list[str], path: Path) -> tuple[set[str], set[str]]:
    path.write_text("".join(ln + "\n" for ln in lines))
    return read_known(str(path))


def test_a_hand_written_finding_is_never_replaced(tmp_path):
    folder = tmp_path / "findings" / safe_name(B5_PROFILE)
    folder.mkdir(parents=True)
    hand = folder / "b5-by-hand.prog"
    hand.write_text(f"# expect: finding {UNREVOKED}\n# why this matters\n\n"
                    + format_program(B5_SYSFS))
    before = hand.read_text()
    sink = _b5_sink(tmp_path, io.StringIO())
    assert not sink.shortenable(UNREVOKED)
    assert UNREVOKED in sink.known_lines()  # known, not marked for shortening
    sink.shorten(B5_DEVMEM, UNREVOKED)
    assert hand.read_text() == before
    assert sorted(p.name for p in folder.iterdir()) == ["b5-by-hand.prog"]


def test_refinds_queue_shorter_inputs_and_samples_with_back_off(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("iomemfuzz.fuzz.targets.time.monotonic", lambda: now[0])
    r = Refinds({"known/one"})
    assert r.pick(["other/sig"], 3) is None  # not asked for
    assert r.pick(["known/one"], 9) == "known/one"  # the first re-find of a known one
    assert r.pick(["known/one"], 9) is None  # neither shorter nor due
    assert r.pick(["known/one"], 8) == "known/one"  # shorter
    r.found("new/sig", 6)
    assert r.pick(["new/sig"], 6) is None
    now[0] += 1.0
    assert r.pick(["new/sig"], 7) == "new/sig"  # sampled after 1 s
    now[0] += 1.0
    assert r.pick(["new/sig"], 7) is None  # the gap doubled
    now[0] += 1.0
    assert r.pick(["new/sig"], 7) == "new/sig"


def test_console_prints_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    console = Console(out, every=1000.0)
    console.progress("a", force=True)
    console.progress("b")  # too soon: dropped
    console.say("event")
    assert out.getvalue() == "a\nevent\n"


def test_until_each_stops_once_every_set_has_a_finding(tmp_path):
    """tools/bench_engines.py --grouped times several catalog entries with one job: it
    stops when each entry's signatures have a stored finding, not at the first."""
    from iomemfuzz.fuzz.job import JobConfig, run_job

    wanted = (frozenset({"kernel-sanity/null-deref/__release_resource"}),
              frozenset({"busy-consistency/release-without-claim/__release_region/wrong-size"}))
    cfg = JobConfig(engine="generate", profile="v6.1-deb-misuse", max_time=120,
                    corpus=tmp_path / "corpus", workdir=tmp_path / "work", seed=1,
                    until_each=wanted, progress_every=1e9)
    summary = run_job(cfg, io.StringIO())
    found = {r.signature for r in summary.findings}
    assert all(group & found for group in wanted), found
    assert summary.elapsed < 120
