"""Opening input files safely, and naming them in outputs.

Every input file radedge reads goes through `open_regular`: a FIFO would block forever, a device
such as /dev/zero never ends, a folder or a dangling link cannot be read; each becomes an
`InputError` for that item instead of a hang, a memory blow-up or the end of the run. The file is
opened first and then checked with `fstat`, so what is checked is what is read (a link swapped in
between cannot sneak past). `O_NONBLOCK` keeps the open of a FIFO from waiting for a writer.

Caps (the error contract: memory is bounded whatever the input) are documented options of the
commands; these are their defaults.
"""
from __future__ import annotations

import codecs
import os
import stat
from typing import BinaryIO

from ..errors import InputError

# Largest report, in characters, that is labelled (`--max-report-chars`); longer ones are that report's error.
MAX_REPORT_CHARS = 120_000  # a 20,000-word report, with room to spare
# Largest file or archive member read as one report (`--max-member-bytes`): an XML / .txt file or a .tgz member.
MAX_MEMBER_BYTES = 16 * 1024 * 1024

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def text_encoding(sample: bytes) -> tuple[str, int]:
    """(encoding, length of its mark) named by the byte-order mark `sample` (the first bytes of a
    text, a few KiB) starts with; UTF-8 without one. A UTF-16 mark counts only when the text after
    it is UTF-16 of mostly ASCII (reports are): Latin-1 text that happens to start with "\xff\xfe"
    ("ÿþ") then stays bytes that are not UTF-8, an error, rather than becoming garbage."""
    for bom, name in BOMS:
        if sample.startswith(bom):
            if name.startswith("utf-16") and not _mostly_ascii_utf16(sample[len(bom):], name.endswith("le")):
                break
            return name, len(bom)
    return "utf-8", 0


def _mostly_ascii_utf16(body: bytes, little_endian: bool) -> bool:
    high = body[1 if little_endian else 0: len(body) // 2 * 2: 2]  # the high byte of each code unit
    return high.count(0) * 2 >= len(high)


class NotRegularFileError(InputError):
    """The path is not a regular file (a folder, FIFO, device, socket) or a link to nothing."""


class UnreadableFileError(InputError):
    """The file is missing, or the system refuses to open it (permissions, a name too long)."""


def kind_of(mode: int) -> str:
    """'a FIFO', 'a folder', ... for a non-regular st_mode ('a special file' when unknown)."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open `path` for binary reading if it is a regular file (links followed); else raise
    NotRegularFileError, or InputError for an OSError (missing, permission), with the reason."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        if os.path.islink(path):
            raise NotRegularFileError("not a regular file (a symbolic link to nothing)") from exc
        raise UnreadableFileError("no such file") from exc
    except OSError as exc:
        raise UnreadableFileError(f"cannot open: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"not a regular file ({kind_of(mode)})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; InputError otherwise (never reads more
    than limit + 1 bytes, whatever the file claims)."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{what} is over the {limit}-byte cap")
    return data


def display_name(path: str | os.PathLike) -> str:
    """A path as text that any UTF-8 output can hold: bytes of a file name that are not UTF-8
    (a Latin-1 name) are written as `\\xe9` escapes, so the name stays unique and stable."""
    return os.fsencode(os.fspath(path)).decode("utf-8", errors="backslashreplace")


def printable(text: str) -> str:
    """Text that encodes as UTF-8: lone surrogates (from a JSON `\\ud83d`, or surrogateescape) escaped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when both paths exist and are the same file (hard links and symbolic links included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


__all__ = ["BOMS", "MAX_MEMBER_BYTES", "MAX_REPORT_CHARS", "NotRegularFileError", "display_name", "kind_of",
           "open_regular", "printable", "read_regular", "same_file", "text_encoding", "UnreadableFileError"]
