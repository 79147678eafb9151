"""Reading what a sandbox could have written, without being led anywhere by it.

The grader's worker runs with more rights than the sandbox (root, or the grader's own
user) and must look at a few things the sandboxed kernel can write: its working copy,
its connection folder, the mount namespaces of the labs it built. Any of those paths
may have been replaced by a symbolic link (to ``/etc/shadow``), a FIFO (which blocks
whoever opens it), a device (``/dev/zero``, endless) or a huge file. So here:

* paths are resolved with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
  RESOLVE_NO_MAGICLINKS)`` below a directory descriptor: no link is ever followed and
  nothing outside that directory is reached;
* a file is first opened with ``O_PATH`` (which opens nothing: no FIFO blocks, no
  device driver runs), its type checked with ``fstat``, and only a regular file is
  then opened for reading (through ``/proc/self/fd``);
* reads stop at a limit given by the caller.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct

__all__ = ["RefusedFile", "kind_of", "open_beneath", "open_dir", "read_regular", "read_tail"]

_SYS_OPENAT2 = 437  # the same on every architecture
_RESOLVE_NO_XDEV, _RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 1, 2, 4, 8
SAFE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS
"""Resolve below the directory, following no link of any kind."""

_libc = ctypes.CDLL(None, use_errno=True)


class RefusedFile(OSError):
    """A path the worker will not read: not a regular file, a link, or too large."""


def open_beneath(dirfd: int, path: str, flags: int, *, resolve: int = SAFE) -> int:
    """``openat2(dirfd, path, flags, resolve)``: a descriptor, or :class:`OSError`."""
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, 0, resolve)
    buf = ctypes.create_string_buffer(how)
    fd = _libc.syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), buf, len(how))
    if fd < 0:
        err = ctypes.get_errno()
        if err == errno.ELOOP:
            raise RefusedFile(err, f"{path} is (or goes through) a symbolic link")
        if err == errno.EXDEV:
            raise RefusedFile(err, f"{path} leads outside the folder")
        raise OSError(err, f"{path}: {os.strerror(err)}")
    return int(fd)


def open_dir(path: str, dirfd: int | None = None) -> int:
    """An ``O_PATH`` descriptor of a directory (below ``dirfd`` when given, safely)."""
    flags = os.O_PATH | os.O_DIRECTORY
    if dirfd is None:
        return os.open(path, flags | os.O_CLOEXEC)
    return open_beneath(dirfd, path, flags)


def _open_regular(dirfd: int, path: str) -> tuple[int, int]:
    """A readable descriptor of a regular file and its size; refuses anything else."""
    pfd = open_beneath(dirfd, path, os.O_PATH | os.O_NOFOLLOW)
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(errno.EINVAL, f"{path} is not a regular file "
                                            f"({kind_of(st.st_mode)})")
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
        return fd, st.st_size
    finally:
        os.close(pfd)


def read_regular(dirfd: int, path: str, limit: int) -> bytes:
    """The whole content of a regular file below ``dirfd``, refused if above ``limit``."""
    fd, size = _open_regular(dirfd, path)
    try:
        if size > limit:
            raise RefusedFile(errno.EFBIG, f"{path} holds {size} bytes (limit {limit})")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise RefusedFile(errno.EFBIG, f"{path} grew beyond {limit} bytes")
        return data
    finally:
        os.close(fd)


def read_tail(dirfd: int, path: str, limit: int) -> bytes:
    """The last ``limit`` bytes of a regular file below ``dirfd``."""
    fd, size = _open_regular(dirfd, path)
    try:
        os.lseek(fd, max(0, size - limit), os.SEEK_SET)
        return os.read(fd, limit)
    finally:
        os.close(fd)


def kind_of(mode: int) -> str:
    """What a file is, in words ("a FIFO"), from its ``st_mode``."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "of an unknown kind"
