"""The commands that report and draw: ``matrix``, ``show --lanes``/``--iomem``, ``plot``.

fuzz/cli.py parses the arguments and calls one function here; each returns the exit
code (0 done, 2 unusable input). matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from iomemfuzz.fuzz.program_file import read_program
from iomemfuzz.fuzz.program_parse import ProgramSyntaxError
from iomemfuzz.model.profile import ProfileError

EXIT_OK, EXIT_USAGE = 0, 2


def matrix(*, as_json: bool = False, as_markdown: bool = False, pictures: Sequence[str] = (),
           write_docs: bool = False, verbose: bool = False, out: TextIO | None = None,
           err: TextIO | None = None) -> int:
    """``iomemfuzz matrix``: run every reproducer on every profile and print the table
    (text, ``--json`` or ``--markdown``); draw the heat map to each of ``pictures``;
    ``write_docs`` regenerates docs/. The run time goes to stderr."""
    from iomemfuzz.fuzz.catalog import ROOT, CatalogError
    from iomemfuzz.fuzz.matrix import compute
    from iomemfuzz.fuzz.matrix_report import heatmap_data, json_text, markdown, text

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    for p in pictures:
        if Path(p).suffix.lower() not in (".png", ".svg"):
            print(f"iomemfuzz matrix: {p}: a picture is .png or .svg", file=err)
            return EXIT_USAGE
    if write_docs and not (ROOT / "docs").is_dir():
        print(f"iomemfuzz matrix: --write-docs needs a checkout ({ROOT}/docs is not here)",
              file=err)
        return EXIT_USAGE
    started = time.monotonic()
    try:
        m = compute()
    except (OSError, ProgramSyntaxError, ProfileError, CatalogError) as exc:
        print(f"iomemfuzz matrix: {exc}", file=err)
        return EXIT_USAGE
    ran = time.monotonic() - started
    if as_json:
        out.write(json_text(m))
    elif as_markdown:
        from iomemfuzz.fuzz.pictures.docs import captions

        out.write(markdown(m, examples=captions()))
    else:
        out.write(text(m, verbose=verbose))
    if pictures:
        from iomemfuzz.fuzz.pictures.heatmap import draw

        data = heatmap_data(m)
        for p in pictures:
            print(f"wrote {draw(data, p)}", file=err)
    if write_docs:
        from iomemfuzz.fuzz.pictures.docs import write_docs as write

        write(ROOT, m, say=lambda s: print(s, file=err))
    cells = len(m.rows) * len(m.profiles)
    print(f"iomemfuzz matrix: {len(m.rows)} reproducers x {len(m.profiles)} profiles "
          f"({cells} cells) in {ran:.1f}s", file=err)
    return EXIT_OK


def show_picture(file: str, *, profile: str | None = None, lanes: bool = False,
                 iomem: int | None = None, output: str | None = None,
                 everything: bool = False, err: TextIO | None = None) -> int:
    """``iomemfuzz show --lanes FILE`` / ``show --iomem STEP FILE``: draw the run."""
    from iomemfuzz.fuzz import iomem_map
    from iomemfuzz.fuzz import lanes as lane_data

    err = err if err is not None else sys.stderr
    stem = Path(file).stem
    target = output or (f"{stem}-lanes.svg" if lanes else f"{stem}-iomem-{iomem}.svg")
    if Path(target).suffix.lower() not in (".png", ".svg"):
        print(f"iomemfuzz show: {target}: a picture is .png or .svg", file=err)
        return EXIT_USAGE
    try:
        program = read_program(file)
        if lanes:
            data = lane_data.data(lane_data.record(program, profile), everything=everything)
        else:
            data = iomem_map.data(program, iomem if iomem is not None else 0, profile)
    except (ProgramSyntaxError, ProfileError, OSError, KeyError,
            iomem_map.StepError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    if lanes:
        from iomemfuzz.fuzz.pictures.lanes import draw
    else:
        from iomemfuzz.fuzz.pictures.iomem import draw
    print(f"wrote {draw(data, target)}", file=err)
    return EXIT_OK


def plot(workdir: str, *, output: str | None = None, err: TextIO | None = None) -> int:
    """``iomemfuzz plot WORKDIR``: coverage and findings over time from its stats.json
    (every profile's, drawn together)."""
    from iomemfuzz.fuzz import fuzz_stats

    err = err if err is not None else sys.stderr
    paths = fuzz_stats.find(Path(workdir))
    if not paths:
        print(f"iomemfuzz plot: no {fuzz_stats.NAME} in {workdir} or its subfolders "
              "(a fuzz job writes one at every progress tick)", file=err)
        return EXIT_USAGE
    target = Path(output) if output else (paths[0].parent if len(paths) == 1
                                          else Path(workdir)) / "progress.svg"
    if target.suffix.lower() not in (".png", ".svg"):
        print(f"iomemfuzz plot: {target}: a picture is .png or .svg", file=err)
        return EXIT_USAGE
    try:
        docs = [fuzz_stats.load(p) for p in paths]
    except fuzz_stats.StatsError as exc:
        print(f"iomemfuzz plot: {exc}", file=err)
        return EXIT_USAGE
    from iomemfuzz.fuzz.pictures.progress import draw, plot_data

    print(f"wrote {draw(plot_data(docs), target)}", file=err)
    return EXIT_OK
