"""The ``iomemfuzz`` command. Thin: each subcommand parses arguments and makes one call.

Exit codes (every subcommand): 0 success / expectations hold, 1 a finding or a
mismatched expectation, 2 unusable input (the message says why).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from iomemfuzz.fuzz.corpus import program_files
from iomemfuzz.fuzz.narration import narrate
from iomemfuzz.fuzz.program import ProgramSyntaxError, read_program
from iomemfuzz.fuzz.replay import check_program
from iomemfuzz.model.profile import PROFILES, ProfileError, resolve

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


def _profile_arg(value: str) -> str:
    try:
        resolve(value)
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def cmd_replay(args: argparse.Namespace) -> int:
    files = list(program_files(args.paths))
    if not files:
        print(f"iomemfuzz replay: no .prog files in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    passed = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            program = read_program(str(path))
            result = check_program(program, str(path), text, args.profile)
        except (ProgramSyntaxError, ProfileError, OSError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if result.ok:
            passed += 1
            if args.verbose:
                print(f"ok   {path} [{', '.join(result.profiles)}]")
        else:
            status = EXIT_FINDING
            for m in result.mismatches:
                print(f"FAIL {m}")
    print(f"{passed} passed, {len(files) - passed} failed")
    return status


def cmd_show(args: argparse.Namespace) -> int:
    try:
        program = read_program(args.file)
        text = narrate(program, args.profile)
    except (ProgramSyntaxError, ProfileError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(text)
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    base = PROFILES["v6.1-deb"].settings()
    for name, profile in PROFILES.items():
        print(f"{name}: {profile.description}")
        if args.verbose:
            for key, value in profile.settings().items():
                print(f"    {key} = {value}")
        else:
            diff = {k: v for k, v in profile.settings().items() if base[k] != v}
            if diff:
                print("    " + ", ".join(f"{k}={v}" for k, v in diff.items()))
    return EXIT_OK


def cmd_fuzz(args: argparse.Namespace) -> int:
    from pathlib import Path

    from iomemfuzz.fuzz.job import JobConfig, run_job

    if args.merge:
        from iomemfuzz.fuzz.artefacts import merge_work_corpus

        merged = merge_work_corpus(Path(args.workdir), args.profile, args.max_len)
        print(merged)
        return merged.exit_code
    return run_job(JobConfig(
        engine=args.engine, profile=args.profile, max_time=args.max_time, jobs=args.jobs,
        corpus=Path(args.corpus), workdir=Path(args.workdir), seed=args.seed,
        max_len=args.max_len, mutator=args.mutator)).exit_code


def cmd_minimize(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.minimize import NothingToMinimize, minimize_file

    try:
        result, text = minimize_file(args.file, args.output, args.profile)
    except (ProgramSyntaxError, ProfileError, OSError, KeyError, NothingToMinimize) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.output is None:
        sys.stdout.write(text)
    print(f"{result.signature}: {result.original_length} -> {len(result.program.lines)} "
          f"operations in {result.runs} runs", file=sys.stderr)
    return EXIT_OK


def cmd_coverage(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.coverage_report import coverage_report

    coverage_report(args.paths or ["corpus"], byte_dirs=args.bytes, profile=args.profile,
                    html=args.html)
    return EXIT_OK


def cmd_import_crash(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.artefacts import describe, import_crashes

    try:
        results = import_crashes(args.files, args.corpus, args.profile)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not results:
        print(f"iomemfuzz import-crash: no crash files in {' '.join(args.files)}",
              file=sys.stderr)
        return EXIT_USAGE
    for r in results:
        print(describe(r), file=sys.stdout if r.ok else sys.stderr)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FINDING


def cmd_export_seeds(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.artefacts import export_seeds

    try:
        report = export_seeds(args.dir, args.corpus, args.profile, args.known)
    except (ProgramSyntaxError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path, why in report.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if args.dict:  # the inputs' vocabulary, for libFuzzer's -dict
        from pathlib import Path

        from iomemfuzz.fuzz.textinput import dictionary

        Path(args.dict).write_text(dictionary(), encoding="utf-8")
    print(f"{report.files} seed input(s) in {args.dir} ({len(report.written)} new, "
          f"{len(report.skipped)} skipped)"
          + (f"; {len(report.known)} known signature(s) in {args.known}" if args.known
             else ""))
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    from iomemfuzz.fuzz.catalog import show

    return show(args.id, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iomemfuzz",
        description="Fuzz Linux iomem/ioport resource and mapping operation sequences "
                    "against an executable model of the kernel.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="replay corpus files and check their expectations")
    p.add_argument("paths", nargs="+", help="files or directories of .prog files")
    p.add_argument("--profile", type=_profile_arg, default=None,
                   help="run on this profile only (default: the file's own and its "
                        "expect@ profiles)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("show", help="narrate one run step by step")
    p.add_argument("file")
    p.add_argument("--profile", type=_profile_arg, default=None)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("profiles", help="list the named kernel profiles and their settings")
    p.add_argument("-v", "--verbose", action="store_true", help="every setting")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("fuzz", help="fuzz the model; minimize and store every new finding")
    p.add_argument("--engine", choices=("atheris", "hypothesis"), default=None,
                   help="default: atheris where it imports, else hypothesis")
    p.add_argument("--profile", type=_profile_arg, default="v6.1-deb")
    p.add_argument("--max-time", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--jobs", type=int, default=1, help="parallel fuzzing processes")
    p.add_argument("--corpus", default="corpus", help="text corpus (findings go here)")
    p.add_argument("--workdir", default="work",
                   help="libFuzzer byte corpus, queue and artefacts, kept between runs")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-len", type=int, default=4096, help="libFuzzer -max_len")
    p.add_argument("--mutator", choices=("structure", "bytes"), default="structure",
                   help="atheris: structure-aware mutator (default) or bytes only")
    p.add_argument("--merge", action="store_true",
                   help="do not fuzz: shrink the work corpus to a minimal set with the same "
                        "coverage (libFuzzer -merge=1)")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("minimize", help="shrink a Program that produces a finding")
    p.add_argument("file")
    p.add_argument("-o", "--output", default=None, help="write here (default: stdout)")
    p.add_argument("--profile", type=_profile_arg, default=None)
    p.set_defaults(func=cmd_minimize)

    p = sub.add_parser("coverage", help="model/ line and branch coverage of a corpus")
    p.add_argument("paths", nargs="*", help="files or directories (default: corpus/)")
    p.add_argument("--bytes", action="append", default=[],
                   help="also run a libFuzzer byte corpus directory (repeatable)")
    p.add_argument("--profile", type=_profile_arg, default=None)
    p.add_argument("--html", default=None, help="write an HTML report to this directory")
    p.set_defaults(func=cmd_coverage)

    p = sub.add_parser("import-crash",
                       help="turn libFuzzer/ClusterFuzzLite crash files into corpus findings")
    p.add_argument("files", nargs="+",
                   help="crash files, or directories holding crash-*/timeout-* files")
    p.add_argument("--corpus", default="corpus", help="text corpus (findings go here)")
    p.add_argument("--profile", type=_profile_arg, default=None,
                   help="the profile the fuzz target ran (default v6.1-deb)")
    p.set_defaults(func=cmd_import_crash)

    # iomemfuzz explore: options and behaviour live in fuzz/explore.py.
    from iomemfuzz.fuzz import explore

    p = sub.add_parser("explore", help="every Program up to K operations, breadth first")
    explore.add_arguments(p)
    p.set_defaults(func=explore.run_cli)

    p = sub.add_parser("export-seeds", help="write the text corpus as fuzz seed inputs")
    p.add_argument("dir", help="output directory (one file per Program, named by SHA-1)")
    p.add_argument("--corpus", default="corpus", help="text corpus to export")
    p.add_argument("--profile", type=_profile_arg, default=None,
                   help="findings of this profile only (default: every profile's)")
    p.add_argument("--dict", default=None,
                   help="also write a libFuzzer dictionary of the Program vocabulary here")
    p.add_argument("--known", default=None,
                   help="also write the signatures the corpus records for --profile "
                        "(a fuzz target's IOMEMFUZZ_KNOWN file)")
    p.set_defaults(func=cmd_export_seeds)

    p = sub.add_parser("catalog", help="the bug catalog: every entry, or one with its "
                                       "reproducer replayed")
    p.add_argument("id", nargs="?", default=None,
                   help="an entry (B16) or a group (B29); omit for the list")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_catalog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
