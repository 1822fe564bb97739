"""errno values as include/uapi/asm-generic/errno-base.h and errno.h define them (x86-64).

The model returns them negated, as kernel functions do (``-EBUSY``); the executor
turns a negative int into the symbolic name that Program text shows.
"""

EPERM = 1
ENOENT = 2
EINTR = 4
EIO = 5
ENXIO = 6
EBADF = 9
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
ENODEV = 19
EINVAL = 22
EFBIG = 27
ENOSPC = 28
ENOSYS = 38
ERANGE = 34

NAMES: dict[int, str] = {
    value: name
    for name, value in sorted(globals().items())
    if name.isupper() and isinstance(value, int) and name != "NAMES"
}
BY_NAME: dict[str, int] = {name: value for value, name in NAMES.items()}


def errname(err: int) -> str:
    """Symbolic name of ``err`` (negative or positive), e.g. ``-16`` -> ``"EBUSY"``."""
    return NAMES.get(abs(err), f"E{abs(err)}")
