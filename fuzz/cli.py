"""The ``iomemfuzz`` command: process-level behaviour around the subcommands.

Exit codes (every subcommand; ``fuzz/exit_codes.py`` has the table ``--help`` prints):
0 clean, 1 a finding or a mismatched expectation, 2 usage or input error, 3 internal error,
130 interrupted. Never a traceback unless ``--debug``:

* an unexpected exception is one line naming it and the file the traceback was written to;
* Ctrl-C at any moment ends with "interrupted" and 130. Until the command is ready to run
  (its modules imported, its arguments parsed) a Ctrl-C ends the process at once, so no
  import can be cut in half (Python then reports "Error calling __set_name__"); after
  that it raises KeyboardInterrupt so that a command can clean up;
* SIGPIPE has its default action, as for any Unix tool: ``iomemfuzz profiles | head -1``
  ends quietly when ``head`` stops reading.

Only ``sys``, ``os``, ``signal`` (already loaded by the interpreter) and the exit-code table
are imported before the handlers are installed; everything else inside :func:`main`.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from iomemfuzz.fuzz import exit_codes, interrupt_now


def _ready() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _internal_error(exc: BaseException, debug: bool) -> int:
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(exc))
    message = (str(exc).splitlines() or [""])[0][:200]
    if debug:
        sys.stderr.write(text)
        where = "traceback above"
    else:
        try:
            fd, path = tempfile.mkstemp(prefix="iomemfuzz-traceback-", suffix=".txt")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            where = f"traceback in {path}"
        except OSError:
            sys.stderr.write(text)
            where = "traceback above"
    sys.stderr.write(f"iomemfuzz: internal error: {type(exc).__name__}: {message}; please "
                     f"report it with the {where}\n")
    return exit_codes.INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point (``argv`` None: this process is the command, and its
    signal handling is set up) or a call from Python with an argument list."""
    process = argv is None
    if process:
        signal.signal(signal.SIGINT, interrupt_now)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        from iomemfuzz.fuzz import commands

        return commands.run(args, _ready if process else None)
    except KeyboardInterrupt:
        sys.stderr.write("iomemfuzz: interrupted\n")
        return exit_codes.INTERRUPTED
    except Exception as exc:
        if _caused_by_interrupt(exc):
            sys.stderr.write("iomemfuzz: interrupted\n")
            return exit_codes.INTERRUPTED
        return _internal_error(exc, debug)
    finally:
        if process:
            # The command is over: a Ctrl-C now would only turn the exit into a traceback
            # of the interpreter's shutdown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
