"""Everything that drives the model: Programs, executor, oracles, engines, the CLI.

exit code 130 (see ``cli.py``): this package is the first code of the project the
command's launcher imports, so the window in which Python would print a KeyboardInterrupt
traceback is only the interpreter's own start-up.
"""

import os as _os
import signal as _signal
import sys as _sys


def interrupt_now(signum: int, frame: object) -> None:
    """SIGINT handler while a command starts: say so and exit 130 at once."""
    _os.write(2, b"iomemfuzz: interrupted\n")
    _os._exit(130)


def _is_the_command() -> bool:
    argv = getattr(_sys, "argv", None) or [""]
    return _os.path.basename(argv[0]) == "iomemfuzz"


if _is_the_command():
    _signal.signal(_signal.SIGINT, interrupt_now)
    # The default action, as for any Unix tool: `iomemfuzz ... | head` ends quietly.
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
