"""Program files: their bytes read safely (a regular file, a size limit) and decoded as
UTF-8, then parsed by :mod:`iomemfuzz.fuzz.program_parse`. Errors name the file: a
path that cannot be read raises ProgramFileError, bad content ProgramSyntaxError."""

from __future__ import annotations

import os
import stat

from iomemfuzz.fuzz.program import Program
from iomemfuzz.fuzz.program_parse import (
    MAX_PROGRAM_BYTES,
    ProgramSyntaxError,
    parse_program,
    text_position,
)


class ProgramFileError(OSError):
    """A path that cannot be read as a Program file: missing, unreadable, not a regular
    file. The message is one line that starts with the path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def decode_program(data: bytes, path: str = "<bytes>") -> str:
    """Program file bytes -> text: UTF-8 (a leading byte-order mark is dropped), at most
    MAX_PROGRAM_BYTES. Raises ProgramSyntaxError naming the line, column and byte offset."""
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if len(data) > MAX_PROGRAM_BYTES:
        head = data[skip:MAX_PROGRAM_BYTES].decode("utf-8", "replace")
        line, column = text_position(head, len(head))
        raise ProgramSyntaxError(path, line, column,
                                 f"file larger than {MAX_PROGRAM_BYTES} bytes")
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[skip:skip + exc.start].decode("utf-8")
        line, column = text_position(head, len(head))
        offset = skip + exc.start
        raise ProgramSyntaxError(path, line, column,
                                 f"not UTF-8: byte {data[offset]:#04x} at byte offset "
                                 f"{offset}") from None


def read_program_bytes(path: str) -> bytes:
    """The bytes of a Program file. Refuses what is not a regular file without reading
    it (a FIFO would block, a device never end) and stops after MAX_PROGRAM_BYTES + 1
    bytes. Raises ProgramFileError."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ProgramFileError(path, exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ProgramFileError(path, f"not a regular file ({_file_kind(mode)})")
        chunks = []
        left = MAX_PROGRAM_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except ProgramFileError:
        raise
    except OSError as exc:
        raise ProgramFileError(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def read_program(path: str | os.PathLike[str]) -> Program:
    """Read and parse a Program file. Raises ProgramFileError (the file) or
    ProgramSyntaxError (its content), nothing else."""
    path = os.fspath(path)
    return parse_program_bytes(read_program_bytes(path), path)


def parse_program_bytes(data: bytes, path: str = "<bytes>") -> Program:
    """Parse the bytes of a Program file; raises ProgramSyntaxError only."""
    return parse_program(decode_program(data, path), path)

