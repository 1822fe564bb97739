#!/usr/bin/env python3
"""Feed mutated corpus files through ``iomemfuzz replay``'s path, in-process, and count what
should never happen: tracebacks, syntax errors on the wrong line, inputs slower than 1 s.

Each input is a corpus file (``corpus/**/*.prog``) with one to three mutations: byte flips,
insertions, deletions, duplicated lines, huge numbers, Unicode (line separators included),
control characters, long lines. It goes through :func:`iomemfuzz.fuzz.replay.replay_bytes`,
what ``iomemfuzz replay`` runs for each file after reading it. Checked for each input:

* **traceback**: any exception escaping ``replay_bytes`` (a malformed file must come back
  as a syntax error, a well-formed one as a result);
* **wrong line**: a syntax error whose line is not the one at fault. The reader is one pass
  over lines split at LF, so the text cut before that line must read without error and the
  text up to and including it must fail with the same line, column and message; an error
  about bytes (not UTF-8, too large) must name the line of its byte offset; the column
  must lie on the line (at most one past its end);
* **slow**: more than ``--slow`` seconds (default 1) of CPU time for one input (CPU, not
  wall-clock time, so that other processes on the machine do not count; the largest
  wall-clock time is reported too).

    .venv/bin/python tools/mutate_replay.py --count 1000000 --seed 1 --out work/mutants

Deterministic for a seed. Examples of each problem go to ``--out``; the counts are printed
every ``--every`` inputs and at the end, as one line of JSON too.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from iomemfuzz.fuzz.program_parse import (
    MAX_LINE_CHARS,
    MAX_PROGRAM_BYTES,
    ProgramSyntaxError,
    parse_program,
    program_lines,
)
from iomemfuzz.fuzz.replay import replay_bytes

ROOT = Path(__file__).resolve().parents[1]
_NUMBER = re.compile(rb"0x[0-9a-fA-F]+|\b[0-9]+\b")
UNICODE = ["é", "ü", "\u2028", "\u2029", "\x85", "\u00a0", "\u200b", "\ufeff", "Ω", "中",
           "😀", "\U0010fffd", "\u0301", "\u202e"]
CONTROL = ["\x00", "\x01", "\x07", "\x08", "\t", "\x0b", "\x0c", "\r", "\x1b", "\x1c",
           "\x1d", "\x1e", "\x1f", "\x7f", "\r\n", "\n\r"]
TOKENS = [b"(", b")", b",", b"=", b"#", b'"', b"\\", b"r0", b"r1 = ", b"nil", b"0x",
          b"iomem", b"# expect: finding ", b"# profile: ", b"# machine: ", b"|", b"\n",
          b"\n\n", b"MEM|BUSY", b"  # ok", b"  # EBUSY", b"  # = 0x1", b"__request_region(",
          b"release_resource(res=r0)"]


class Mutator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ops = [self.flip, self.insert, self.delete, self.duplicate_line,
                    self.huge_number, self.unicode, self.control, self.long_line]

    def mutate(self, data: bytes) -> tuple[bytes, list[str]]:
        names = []
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            op = self.rng.choice(self.ops)
            data = op(data)
            names.append(op.__name__)
        return data, names

    def _pos(self, data: bytes) -> int:
        return self.rng.randrange(len(data) + 1)

    def flip(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self.rng.randrange(len(data))
        value = data[i] ^ (1 << self.rng.randrange(8)) if self.rng.random() < 0.5 \
            else self.rng.randrange(256)
        return data[:i] + bytes([value]) + data[i + 1:]

    def insert(self, data: bytes) -> bytes:
        i = self._pos(data)
        piece = self.rng.choice(TOKENS) if self.rng.random() < 0.6 else bytes(
            self.rng.randrange(256) for _ in range(self.rng.randrange(1, 8)))
        return data[:i] + piece + data[i:]

    def delete(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + data[i + self.rng.randrange(1, 40):]

    def duplicate_line(self, data: bytes) -> bytes:
        lines = data.split(b"\n")
        i = self.rng.randrange(len(lines))
        j = self.rng.randrange(len(lines) + 1)
        return b"\n".join(lines[:j] + [lines[i]] * self.rng.choice((1, 1, 2, 50)) + lines[j:])

    def huge_number(self, data: bytes) -> bytes:
        numbers = list(_NUMBER.finditer(data))
        digits = self.rng.choice((21, 40, 4301, 5000, 12000))
        if self.rng.random() < 0.5:
            new = b"0x" + b"f" * digits
        else:
            new = (b"0" * self.rng.choice((0, 30)) + b"9" * digits)
        if not numbers:
            i = self._pos(data)
            return data[:i] + new + data[i:]
        m = self.rng.choice(numbers)
        return data[:m.start()] + new + data[m.end():]

    def unicode(self, data: bytes) -> bytes:
        i = self._pos(data)
        piece = "".join(self.rng.choice(UNICODE) for _ in range(self.rng.randrange(1, 4)))
        raw = piece.encode("utf-8")
        if self.rng.random() < 0.2:  # a broken sequence: a lone continuation or lead byte
            raw = self.rng.choice((b"\x80", b"\xc3", b"\xe2\x80", b"\xed\xa0\x80", b"\xff"))
        return data[:i] + raw + data[i:]

    def control(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + self.rng.choice(CONTROL).encode() + data[i:]

    def long_line(self, data: bytes) -> bytes:
        i = self._pos(data)
        n = self.rng.choice((1000, MAX_LINE_CHARS - 20, MAX_LINE_CHARS + 1, 100_000,
                             MAX_PROGRAM_BYTES + 10))
        fill = self.rng.choice((b" ", b"a", b"9", b"#", b"\t", b"x,"))
        return data[:i] + fill * (n // len(fill)) + data[i:]


def line_is_right(data: bytes, err: ProgramSyntaxError) -> bool:
    """Is ``err`` reported on the line (and at a column) where the fault is?"""
    if err.line < 1 or err.column < 1:
        return False
    if "UTF-8" in err.message or "larger than" in err.message:
        offset = MAX_PROGRAM_BYTES
        m = re.search(r"byte offset (\d+)", err.message)
        if m:
            offset = int(m.group(1))
        return data.count(b"\n", 0, offset) + 1 == err.line
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = program_lines(text)
    if err.line > len(lines) or err.column > len(lines[err.line - 1]) + 1:
        return False
    if "longer than" in err.message:
        return len(lines[err.line - 1]) > MAX_LINE_CHARS
    try:
        parse_program("\n".join(lines[:err.line - 1]) + "\n", err.path)
    except ProgramSyntaxError:
        return False  # the fault is on an earlier line
    try:
        parse_program("\n".join(lines[:err.line]) + "\n", err.path)
    except ProgramSyntaxError as again:
        return (again.line, again.column, again.message) == (err.line, err.column,
                                                             err.message)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs to run")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument("--corpus", default=str(ROOT / "corpus"), help="where the files are")
    parser.add_argument("--out", default=None, help="keep examples of each problem here")
    parser.add_argument("--slow", type=float, default=1.0, help="seconds that count as slow")
    parser.add_argument("--every", type=int, default=50_000, help="progress every N inputs")
    args = parser.parse_args(argv)
    sources = [p.read_bytes() for p in sorted(Path(args.corpus).rglob("*.prog"))]
    rng = random.Random(args.seed)
    mutator = Mutator(rng)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    slowest = 0.0
    slowest_wall = 0.0
    slowest_how = ""
    started = time.monotonic()

    def keep(kind: str, data: bytes, note: str) -> None:
        kept[kind] += 1
        if out is not None and kept[kind] <= 20:
            (out / f"{kind}-{kept[kind]}.prog").write_bytes(data)
            (out / f"{kind}-{kept[kind]}.txt").write_text(note)

    def report(final: bool = False) -> None:
        line = {"inputs": counts["inputs"], "read": counts["read"],
                "syntax_errors": counts["syntax"], "not_utf8": counts["utf8"],
                "mismatched": counts["mismatched"], "tracebacks": counts["traceback"],
                "wrong_lines": counts["wrong_line"], "slow": counts["slow"],
                "slowest_cpu_s": round(slowest, 3), "slowest_wall_s": round(slowest_wall, 3),
                "slowest_mutations": slowest_how,
                "elapsed_s": round(time.monotonic() - started, 1)}
        print(("final " if final else "") + json.dumps(line), flush=True)

    for i in range(args.count):
        data, how = mutator.mutate(rng.choice(sources))
        counts["inputs"] += 1
        t0, w0 = time.thread_time(), time.perf_counter()
        try:
            result = replay_bytes(data, f"<mutant {i}>")
        except Exception:  # the one place a traceback is the measurement
            counts["traceback"] += 1
            keep("traceback", data, f"{how}\n{traceback.format_exc()}")
            continue
        finally:
            took = time.thread_time() - t0
            slowest_wall = max(slowest_wall, time.perf_counter() - w0)
            if took > slowest:
                slowest, slowest_how = took, "+".join(how)
        if took > args.slow:
            counts["slow"] += 1
            keep("slow", data, f"{how}\n{took:.3f} s")
        if result.error is not None:
            err = result.error
            counts["syntax"] += 1
            if "UTF-8" in str(err):
                counts["utf8"] += 1
            if not isinstance(err, ProgramSyntaxError) or not line_is_right(data, err):
                counts["wrong_line"] += 1
                keep("wrong_line", data, f"{how}\n{err}")
        else:
            counts["read"] += 1
            if not result.ok:
                counts["mismatched"] += 1
        if args.every and (i + 1) % args.every == 0:
            report()
    report(final=True)
    return 1 if counts["traceback"] or counts["wrong_line"] or counts["slow"] else 0


if __name__ == "__main__":
    sys.exit(main())
