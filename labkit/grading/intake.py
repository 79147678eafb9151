"""Taking submissions in: which files count, their student ids, reading them safely.

A folder of submissions is whatever students uploaded, so a "notebook" may be a
symbolic link (to ``/etc/shadow``, into the standard library), a FIFO that blocks
whoever opens it, a device such as ``/dev/zero``, or a huge file. The grader accepts
only **regular files of bounded size**: every other entry is refused on its own,
with the reason, and the rest of the batch is graded. Files are opened without
following links and without blocking (``O_NOFOLLOW | O_NONBLOCK``), checked with
``fstat`` on the open descriptor (no race between the check and the read), and read
up to the limit.

Student ids come from file names: letters and digits of any script are kept (``日本``
stays ``日本``), anything else becomes ``_``, and long names are shortened; when two
files give the same id, each gets a short hash of its own name, so every file gets a
distinct, readable id and nothing is refused for its name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labkit.grading.safefs import kind_of

__all__ = ["MAX_NOTEBOOK_BYTES", "Refused", "Submission", "find_submissions", "read_submission",
           "student_id"]

MAX_NOTEBOOK_BYTES = 16 << 20
"""Largest submission accepted (a notebook with its outputs)."""
_ID_BYTES = 96  # UTF-8 bytes of an id before its hash suffix (file names allow 255)


@dataclass(frozen=True)
class Submission:
    """One submitted notebook and the student id taken from its file name."""

    student: str
    path: Path


class Refused(OSError):
    """A submission file the grader will not read, with the reason."""


def _clean(name: str) -> str:
    name = unicodedata.normalize("NFC", name)
    out = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
    return out.strip("._") or "_"


def _shorten(text: str, limit: int = _ID_BYTES) -> str:
    if len(text.encode("utf-8")) <= limit:
        return text
    while len(text.encode("utf-8")) > limit - 9:
        text = text[:-1]
    return text


def _suffix(path: Path) -> str:
    return hashlib.sha256(os.fsencode(str(path))).hexdigest()[:8]


def student_id(path: Path) -> str:
    """The student id of a submission file: its name without ``.ipynb``, made safe."""
    name = path.name[:-len(".ipynb")] if path.name.endswith(".ipynb") else path.name
    clean = _clean(name)
    short = _shorten(clean)
    return short if short == clean else f"{short}-{_suffix(path)}"


def find_submissions(paths: Iterable[str | Path]) -> list[Submission]:
    """Submissions from files and folders (every ``*.ipynb`` directly in a folder).

    Every file gets a distinct id (see the module's docstring); entries that are not
    regular files are listed too, and refused one by one when read.
    """
    files: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir() and not item.is_symlink():
            files.extend(sorted(p for p in item.iterdir() if p.name.endswith(".ipynb")))
        else:
            files.append(item)
    base = [(student_id(f), f) for f in files]
    counts: dict[str, int] = {}
    for sid, _ in base:
        counts[sid] = counts.get(sid, 0) + 1
    found = [Submission(sid if counts[sid] == 1 else f"{_shorten(sid)}-{_suffix(f)}", f)
             for sid, f in base]
    found.sort(key=lambda s: s.student)
    return found


def read_submission(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of a submitted file, or :class:`Refused` saying why not."""
    try:  # O_PATH opens nothing: no FIFO blocks, no device driver runs
        pfd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(exc.errno or 0, f"refused: cannot open it ({exc.strerror})") from None
    try:
        st = os.fstat(pfd)
        if stat.S_ISLNK(st.st_mode):
            raise Refused(errno.ELOOP, "refused: a symbolic link, not a notebook file "
                                       "(submit the file itself)")
        if not stat.S_ISREG(st.st_mode):
            raise Refused(errno.EINVAL, f"refused: {kind_of(st.st_mode)}, not a notebook file")
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    try:
        if st.st_size > limit:
            raise Refused(errno.EFBIG, f"refused: {st.st_size} bytes, more than the limit "
                                       f"of {limit} bytes for a notebook")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise Refused(errno.EFBIG, f"refused: more than the limit of {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
