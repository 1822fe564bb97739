"""The subcommands of ``iomemfuzz``: their arguments (each with help text) and what each does.

Adding a subcommand is one ``_add_NAME(sub)`` function that declares its parser (with
``set_defaults(func=..., module=...)``) and one entry in ``SUBCOMMANDS``. ``module`` names
what the command imports to run; :func:`run` imports it before Ctrl-C may raise (see
``cli.py``). A command returns an exit code (``exit_codes``) and raises ``InputError`` for
anything the user can fix; every argument is checked before anything is written.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from iomemfuzz.fuzz import exit_codes
from iomemfuzz.fuzz.exit_codes import InputError
from iomemfuzz.fuzz.job_config import ENGINES
from iomemfuzz.fuzz.program_file import ProgramFileError
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
from iomemfuzz.model.profile import ProfileError, resolve

PROG = "iomemfuzz"
EXAMPLES = """\
examples:
  iomemfuzz replay corpus/                       replay every Program, check expectations
  iomemfuzz replay --json corpus/seeds           the same as JSON
  iomemfuzz show corpus/seeds/tree-claim-release.prog
  iomemfuzz profiles -v                          every profile, every setting in words
  iomemfuzz fuzz --profile v6.1 --max-time 600   a ten-minute fuzz job
  iomemfuzz fuzz --jobs 2 --json > summary.json  two workers, JSON summary
  iomemfuzz minimize FILE -o OUT                 shrink a Program, same signature
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(exit_codes.INPUT)


def _epilog(examples: str = EXAMPLES) -> str:
    return f"{examples}\nexit codes:\n{exit_codes.table_text()}\n"


# --- argument types ---------------------------------------------------------------------


def _profile(value: str) -> str:
    try:
        resolve(value)
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number of seconds > 0")
    return seconds


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


def _seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number < 1 << 32:
        raise argparse.ArgumentTypeError(f"{value!r} is not a seed (0 to 4294967295)")
    return number


# --- path checks (after parsing: nothing is created before every argument is good) ------


def _output_dir(path: Path, what: str) -> None:
    """A directory the command may create, but only inside one that exists."""
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{what} {path} is not a directory")
    elif not path.parent.is_dir():
        raise InputError(f"{what} {path}: {path.parent} does not exist (it is not created)")


def _output_file(path: Path, what: str) -> None:
    if path.exists() and not path.is_file():
        raise InputError(f"{what} {path} is not a regular file")
    if not path.parent.is_dir():
        raise InputError(f"{what} {path}: {path.parent} does not exist (it is not created)")


def _existing_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputError(f"{what} {path} " + ("is not a directory" if path.exists()
                                              else "does not exist"))


def _existing(paths: Sequence[str]) -> None:
    for p in paths:
        if not os.path.exists(p):
            raise ProgramFileError(p, "No such file or directory")


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


# --- replay -------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.corpus import program_files
    from iomemfuzz.fuzz.replay import replay_file

    files = list(program_files(args.paths))
    if not files:
        raise InputError(f"no .prog files in {' '.join(args.paths)}")
    done = []
    for path in files:
        r = replay_file(str(path), args.profile)
        done.append(r)
        if args.json:
            continue
        if r.error is not None:
            print(r.error, file=sys.stderr)
        elif r.ok:
            if args.verbose:
                print(f"ok   {path} [{', '.join(r.result.profiles)}]")  # type: ignore[union-attr]
        else:
            for m in r.result.mismatches:  # type: ignore[union-attr]
                print(f"FAIL {m}")
    passed = sum(1 for r in done if r.ok)
    malformed = sum(1 for r in done if r.error is not None)
    code = exit_codes.worst(
        ({exit_codes.INPUT} if malformed else set())
        | ({exit_codes.FINDING} if passed + malformed < len(done) else set()))
    if args.json:
        _print_json({"files": [r.as_json() for r in done], "passed": passed,
                     "failed": len(done) - passed, "malformed": malformed,
                     "exit_code": code})
    else:
        print(f"{passed} passed, {len(done) - passed} failed"
              + (f" ({malformed} unreadable or malformed)" if malformed else ""))
    return code


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay Program files and check their expectations",
                       epilog=_epilog("examples:\n  iomemfuzz replay corpus/\n"
                                      "  iomemfuzz replay --profile v6.1 corpus/seeds\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="files or directories of .prog files")
    p.add_argument("--profile", type=_profile, default=None,
                   help="run on this profile only (default: the file's own and its "
                        "expect@ profiles)")
    p.add_argument("-v", "--verbose", action="store_true", help="also list the files that pass")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: every file's result and the counts")
    p.set_defaults(func=cmd_replay, module="iomemfuzz.fuzz.replay")


# --- show ---------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.narration import story
    from iomemfuzz.fuzz.program_file import read_program

    if args.lanes or args.iomem is not None:
        from iomemfuzz.fuzz.reports import show_picture

        drawn = show_picture(args.file, profile=args.profile, lanes=args.lanes,
                             iomem=args.iomem, output=args.output, everything=args.all)
        if drawn != exit_codes.OK:
            return drawn
        # The picture is a view of the run: the exit code still says whether the run
        # shows a finding, as the narration's does.
        told = story(read_program(args.file), args.profile)
        return exit_codes.FINDING if told.has_finding else exit_codes.OK

    told = story(read_program(args.file), args.profile)
    if args.json:
        _print_json({"path": args.file, **told.as_json()})
    else:
        sys.stdout.write(told.text())
    return exit_codes.FINDING if told.has_finding else exit_codes.OK


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="narrate one run step by step (exit 1 on a finding)",
                       epilog=_epilog("examples:\n  iomemfuzz show "
                                      "corpus/seeds/tree-claim-release.prog\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="the Program file to run")
    p.add_argument("--profile", type=_profile, default=None,
                   help="run on this profile (default: the file's own)")
    p.add_argument("--json", action="store_true",
                   help="print the story as one JSON object: steps, events, verdict")
    p.add_argument("--lanes", action="store_true",
                   help="draw the run as one lane per kernel task (the race picture)")
    p.add_argument("--iomem", type=int, default=None, metavar="STEP",
                   help="draw /proc/iomem before and after line STEP ([N] in the story)")
    p.add_argument("-o", "--output", default=None,
                   help="picture file, .svg or .png (default: FILE-lanes.svg / "
                        "FILE-iomem-STEP.svg)")
    p.add_argument("--all", action="store_true",
                   help="--lanes: every slice (default: long uneventful runs shortened)")
    p.set_defaults(func=cmd_show, module="iomemfuzz.fuzz.narration")


# --- profiles -----------------------------------------------------------------------------


def cmd_profiles(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.profile_table import profile_table, profiles_json

    if args.json:
        _print_json(profiles_json())
    else:
        sys.stdout.write(profile_table(args.verbose))
    return exit_codes.OK


def _add_profiles(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profiles", help="the kernel profiles: kernel, parent, what differs",
                       epilog=_epilog("examples:\n  iomemfuzz profiles\n"
                                      "  iomemfuzz profiles --json\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="every setting of every profile, in words")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: settings, parent and differences of each profile")
    p.set_defaults(func=cmd_profiles, module="iomemfuzz.fuzz.profile_table")


# --- fuzz ---------------------------------------------------------------------------------


def cmd_fuzz(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.job import JobConfig, atheris_installed, default_engine, run_job
    from iomemfuzz.fuzz.summary import summary_json

    corpus, workdir = Path(args.corpus), Path(args.workdir)
    _output_dir(corpus, "corpus")
    engine = args.engine or default_engine()
    if engine == "atheris" and not atheris_installed():
        raise InputError("--engine atheris: atheris is not installed (pip install atheris)")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create work directory {workdir}: "
                         f"{exc.strerror or exc}") from None
    if args.merge:
        from iomemfuzz.fuzz.artefacts import merge_work_corpus

        merged = merge_work_corpus(workdir, args.profile, args.max_len)
        print(merged)
        return merged.exit_code
    # With --json the progress and the text summary go to stderr, the JSON to stdout.
    out = sys.stderr if args.json else sys.stdout
    summary = run_job(JobConfig(
        engine=engine, profile=args.profile, max_time=args.max_time, jobs=args.jobs,
        corpus=corpus, workdir=workdir, seed=args.seed, max_len=args.max_len,
        mutator=args.mutator), out)
    if args.json:
        _print_json(summary_json(summary))
    return summary.exit_code


def _add_fuzz(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuzz", help="fuzz the model; minimize and store every new finding",
                       epilog=_epilog("examples:\n  iomemfuzz fuzz\n"
                                      "  iomemfuzz fuzz --profile v6.1 --max-time 600\n"
                                      "  iomemfuzz fuzz --engine generate --seed 0\n"
                                      "  iomemfuzz fuzz --merge\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="generate: Programs written line by line from the state they "
                        "reach; atheris: libFuzzer mutating Program text; hypothesis: "
                        "hypothesis strategies (default: generate)")
    p.add_argument("--profile", type=_profile, default="v6.1-deb",
                   help="the kernel profile to fuzz (default v6.1-deb)")
    p.add_argument("--max-time", type=_seconds, default=60.0,
                   help="seconds to fuzz, finite and > 0 (default 60)")
    p.add_argument("--jobs", type=_positive, default=1,
                   help="parallel fuzzing processes (default 1)")
    p.add_argument("--corpus", default="corpus",
                   help="text corpus directory: findings are stored here (default corpus)")
    p.add_argument("--workdir", default="work",
                   help="libFuzzer byte corpus, queue and artefacts, kept between runs; "
                        "one job at a time (default work)")
    p.add_argument("--seed", type=_seed, default=None,
                   help="random seed, 0 included (default: a fresh one)")
    p.add_argument("--max-len", type=_positive, default=4096,
                   help="libFuzzer -max_len in bytes (default 512)")
    p.add_argument("--mutator", choices=("structure", "bytes"), default="structure",
                   help="atheris: structure-aware mutator (default) or bytes only")
    p.add_argument("--merge", action="store_true",
                   help="do not fuzz: shrink the work corpus to a minimal set with the same "
                        "coverage (libFuzzer -merge=1)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on stdout (progress on stderr)")
    p.set_defaults(func=cmd_fuzz, module="iomemfuzz.fuzz.job")


# --- minimize -----------------------------------------------------------------------------


def cmd_minimize(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.minimize import NothingToMinimize, minimize_file

    if args.output is not None:
        _output_file(Path(args.output), "output")
    try:
        result, text = minimize_file(args.file, args.output, args.profile)
    except NothingToMinimize as exc:
        raise InputError(str(exc)) from None
    if args.output is None:
        sys.stdout.write(text)
    print(f"{result.signature}: {result.original_length} -> {len(result.program.lines)} "
          f"operations in {result.runs} runs", file=sys.stderr)
    return exit_codes.OK


def _add_minimize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("minimize", help="shrink a Program that produces a finding",
                       epilog=_epilog("examples:\n  iomemfuzz minimize long.prog -o short.prog\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="the Program file to shrink")
    p.add_argument("-o", "--output", default=None,
                   help="write here, in a directory that exists (default: stdout)")
    p.add_argument("--profile", type=_profile, default=None,
                   help="minimize on this profile for its first finding (default: the "
                        "file's profile and expected finding)")
    p.set_defaults(func=cmd_minimize, module="iomemfuzz.fuzz.minimize")


# --- coverage -----------------------------------------------------------------------------


def cmd_coverage(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.corpus import program_files
    from iomemfuzz.fuzz.coverage_report import coverage_report
    from iomemfuzz.fuzz.program_file import read_program

    paths = args.paths or ["corpus"]
    _existing(paths)
    for folder in args.bytes:
        _existing_dir(Path(folder), "--bytes")
    if args.html:
        _output_dir(Path(args.html), "--html")
    # Every file is read here first: a malformed one stops the command before the replay.
    bad = []
    for path in program_files(paths):
        try:
            read_program(path)
        except (ProgramSyntaxError, ProgramFileError) as exc:
            bad.append(str(exc))
    if bad:
        for line in bad:
            print(line, file=sys.stderr)
        return exit_codes.INPUT
    coverage_report(paths, byte_dirs=args.bytes, profile=args.profile, html=args.html)
    return exit_codes.OK


def _add_coverage(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coverage", help="model/ line and branch coverage of a corpus",
                       epilog=_epilog("examples:\n  iomemfuzz coverage corpus/ --html cov\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", help="files or directories (default: corpus/)")
    p.add_argument("--bytes", action="append", default=[],
                   help="also run a libFuzzer byte corpus directory (repeatable)")
    p.add_argument("--profile", type=_profile, default=None,
                   help="profile for the byte inputs and the only one for Programs")
    p.add_argument("--html", default=None,
                   help="write an HTML report to this directory (its parent must exist)")
    p.set_defaults(func=cmd_coverage, module="iomemfuzz.fuzz.coverage_report")


# --- import-crash, export-seeds -----------------------------------------------------------


def cmd_import_crash(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.artefacts import describe, import_crashes

    _existing(args.files)
    for f in args.files:
        if not os.path.isdir(f) and not os.path.isfile(f):
            raise ProgramFileError(f, "not a regular file")
    _output_dir(Path(args.corpus), "corpus")
    results = import_crashes(args.files, args.corpus, args.profile)
    if not results:
        raise InputError(f"no crash files in {' '.join(args.files)}")
    for r in results:
        print(describe(r), file=sys.stdout if r.ok else sys.stderr)
    return exit_codes.OK if all(r.ok for r in results) else exit_codes.FINDING


def _add_import_crash(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-crash",
                       help="turn libFuzzer/ClusterFuzzLite crash files into corpus findings",
                       epilog=_epilog("examples:\n  iomemfuzz import-crash crash-0123abcd\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+",
                   help="crash files, or directories holding crash-*/timeout-* files")
    p.add_argument("--corpus", default="corpus", help="text corpus (findings go here)")
    p.add_argument("--profile", type=_profile, default=None,
                   help="the profile the fuzz target ran (default v6.1-deb)")
    p.set_defaults(func=cmd_import_crash, module="iomemfuzz.fuzz.artefacts")


def cmd_export_seeds(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.artefacts import export_seeds

    _existing_dir(Path(args.corpus), "corpus")
    _output_dir(Path(args.dir), "output directory")
    if args.known:
        _output_file(Path(args.known), "--known")
    report = export_seeds(args.dir, args.corpus, args.profile, args.known)
    for path, why in report.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if args.dict:  # the inputs' vocabulary, for libFuzzer's -dict
        from iomemfuzz.fuzz.textinput import dictionary

        _output_file(Path(args.dict), "--dict")
        Path(args.dict).write_text(dictionary(), encoding="utf-8")
    print(f"{report.files} seed input(s) in {args.dir} ({len(report.written)} new, "
          f"{len(report.skipped)} skipped)"
          + (f"; {len(report.known)} known signature(s) in {args.known}" if args.known
             else ""))
    return exit_codes.OK


def _add_export_seeds(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-seeds", help="write the text corpus as fuzz seed inputs",
                       epilog=_epilog("examples:\n  iomemfuzz export-seeds seeds/ --known "
                                      "known.txt\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="output directory, one file per Program named by SHA-1 "
                               "(created if its parent exists)")
    p.add_argument("--corpus", default="corpus", help="text corpus directory to export")
    p.add_argument("--profile", type=_profile, default=None,
                   help="findings of this profile only (default: every profile's)")
    p.add_argument("--known", default=None,
                   help="also write the signatures the corpus records for --profile "
                        "(a fuzz target's IOMEMFUZZ_KNOWN file)")
    p.add_argument("--dict", default=None,
                   help="also write a libFuzzer dictionary of the Program vocabulary here")
    p.set_defaults(func=cmd_export_seeds, module="iomemfuzz.fuzz.artefacts")


def cmd_explore(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.explore import run_cli

    return run_cli(args)


def _add_explore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore", help="every Program up to K operations, breadth first "
                                       "(fuzz/explore.py)")
    p.add_argument("--profile", type=_profile, default="v6.1-deb",
                   help="kernel profile to explore (default v6.1-deb)")
    p.add_argument("--machine", default=None,
                   help="machine to boot (default: the built-in QEMU-like guest)")
    p.add_argument("--depth", type=int, default=3, help="operations per Program (K)")
    p.add_argument("--ops", default="", help="comma-separated operations (default: all)")
    p.add_argument("--values", type=int, default=2,
                   help="state anchors per address (legacy window, a BAR no driver holds, "
                        "free MMIO, RAM)")
    p.add_argument("--recent", type=int, default=0, help="prefix addresses reused")
    p.add_argument("--sizes", default="0x1000", help="comma-separated sizes (hex)")
    p.add_argument("--preemptions", type=int, default=2, help="step lines per Program")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes; each level's frontier is split between them")
    p.add_argument("--out", default="corpus",
                   help="corpus: findings go to OUT/findings/<profile>/, never replacing a "
                        "stored Program as short or shorter ('' for none)")
    p.add_argument("--checkpoint", default=None, help="file to keep progress in")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--max-time", type=float, default=None,
                   help="stop after this many seconds (the checkpoint keeps whole levels)")
    p.set_defaults(func=cmd_explore, module="iomemfuzz.fuzz.explore")


def cmd_catalog(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.catalog import show

    return show(args.id, args.json)


def _add_catalog(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="the bug catalog: every entry, or one with its "
                                       "reproducer replayed",
                       epilog=_epilog("examples:\n  iomemfuzz catalog\n"
                                      "  iomemfuzz catalog B16 --json\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("id", nargs="?", default=None,
                   help="an entry (B16) or a group (B29); omit for the list")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_catalog, module="iomemfuzz.fuzz.catalog")


def cmd_resign(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.resign import main

    for path in args.paths:
        if not Path(path).exists():
            raise InputError(f"{path}: no such file or directory")
    return main(args.paths, write=not args.dry_run, check=args.check)


def _add_resign(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resign", help="rewrite the expect lines of corpus files under the "
                                      "current signatures",
                       epilog=_epilog("examples:\n  iomemfuzz resign --dry-run --check "
                                      "corpus/\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", default=["corpus"],
                   help="files or directories of .prog files (default: corpus)")
    p.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a change is more than a renaming (behaviour changed)")
    p.set_defaults(func=cmd_resign, module="iomemfuzz.fuzz.resign")


def cmd_confirm(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.confirm import Options, confirm_files

    return confirm_files(args.files, Options(args.kernel, args.append or "", args.profile,
                                             args.install), as_json=args.json)


def _add_confirm(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("confirm", help="run Programs on a real kernel in QEMU and compare "
                                       "each line with the model (docs/CONFIRM.md)",
                       epilog=_epilog("examples:\n  iomemfuzz confirm "
                                      "corpus/seeds/mapping-qemu-*.prog\n"
                                      "  iomemfuzz confirm --kernel 6.12 --json FILE\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help=".prog files")
    p.add_argument("--kernel", choices=("6.1", "6.12"), default="6.1",
                   help="the Debian kernel to boot (default 6.1)")
    p.add_argument("--append", default=None, help="extra kernel command line (iomem=relaxed)")
    p.add_argument("--profile", type=_profile, default=None,
                   help="the model profile to compare with (default: the file's)")
    p.add_argument("--json", action="store_true", help="JSON report")
    p.add_argument("--install", action="store_true",
                   help="apt-get install the Debian packages that are missing (as root)")
    p.set_defaults(func=cmd_confirm, module="iomemfuzz.fuzz.confirm")


def cmd_matrix(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.reports import matrix

    for picture in args.picture:
        _output_file(Path(picture), "--picture")
    return matrix(as_json=args.json, as_markdown=args.markdown, pictures=args.picture,
                  write_docs=args.write_docs, verbose=args.verbose)


def _add_matrix(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("matrix", help="run every catalog reproducer on every profile: the "
                                      "bug x profile table, grouped by question",
                       epilog=_epilog("examples:\n  iomemfuzz matrix\n"
                                      "  iomemfuzz matrix --json > matrix.json\n"
                                      "  iomemfuzz matrix --picture matrix.png\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--markdown", action="store_true", help="print docs/MATRIX.md")
    p.add_argument("--picture", action="append", default=[], metavar="FILE",
                   help="also draw the heat map to FILE (.svg or .png; repeatable)")
    p.add_argument("--write-docs", action="store_true",
                   help="regenerate docs/MATRIX.md, docs/matrix.json and docs/ pictures")
    p.add_argument("-v", "--verbose", action="store_true", help="every cell's signatures")
    p.set_defaults(func=cmd_matrix, module="iomemfuzz.fuzz.reports")


def cmd_plot(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.reports import plot

    if not Path(args.workdir).exists():
        raise InputError(f"{args.workdir}: no such file or directory")
    return plot(args.workdir, output=args.output)


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw a fuzz job's coverage and findings over time",
                       epilog=_epilog("examples:\n  iomemfuzz plot work/ -o progress.png\n"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", help="a fuzz --workdir (or one profile's folder in it, or "
                                   "a stats.json)")
    p.add_argument("-o", "--output", default=None,
                   help="picture file, .svg or .png (default: progress.svg beside the data)")
    p.set_defaults(func=cmd_plot, module="iomemfuzz.fuzz.reports")


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_replay, _add_show, _add_profiles, _add_fuzz, _add_minimize, _add_coverage,
    _add_import_crash, _add_export_seeds, _add_explore, _add_catalog, _add_resign,
    _add_confirm, _add_matrix, _add_plot)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iomemfuzz")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Fuzz Linux iomem/ioport resource and mapping operation sequences "
                    "against an executable model of the kernel.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the version and exit")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the traceback instead of saving it")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser,
                                help="one of these (iomemfuzz COMMAND --help for its options):")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def run(argv: Sequence[str], ready: Callable[[], None] | None = None) -> int:
    """Parse ``argv``, import the command's module, call ``ready`` (from then on Ctrl-C
    raises KeyboardInterrupt), run the command. Usage and input errors are one line on
    stderr and exit code 2."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error
        return exc.code if isinstance(exc.code, int) else exit_codes.INPUT
    importlib.import_module(args.module)
    if ready is not None:
        ready()
    try:
        return args.func(args)
    except (ProgramSyntaxError, ProgramFileError) as exc:
        # FILE:LINE:COLUMN: first, as compilers print it, so editors can jump there.
        print(exc, file=sys.stderr)
        return exit_codes.INPUT
    except (InputError, ProfileError) as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exit_codes.INPUT
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG} {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return exit_codes.INPUT
