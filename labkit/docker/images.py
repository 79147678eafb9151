"""The course's base image, built offline from Debian's busybox-static.

No image registry can be assumed (a classroom VM, CI, a machine behind a firewall), so
the image every Docker lesson runs is made on the spot: one statically linked
``/bin/busybox``, a symbolic link per applet (``sh``, ``ping``, ``ip``, ``ifconfig``,
``route``, ``nc``, ``wget``, ``httpd``, ``nslookup``, ``hostname``, ``sleep``...), a
few files in ``/etc`` and a page for ``httpd`` to serve, packed into a tar stream and
given to the engine::

    tar -C rootfs -c . | docker import --change 'CMD ["sh"]' \
        --change 'LABEL io.labkit.image=base' - labkit/busybox:1

Building takes about a second and needs no network. It is cached: when the tag
already exists nothing is done (``rebuild=True`` forces a new build).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from labkit.errors import ToolMissing

from .resources import IMAGE_LABEL

__all__ = ["BASE_IMAGE", "WEB_PAGE", "busybox_path", "rootfs_tar", "ensure_base_image",
           "base_image_present"]

BASE_IMAGE = "labkit/busybox:1"
"""Repository and tag of the base image (bump the tag when its contents change)."""

WEB_PAGE = "hello from a labkit container\n"
"""What ``httpd -h /var/www`` serves as ``/index.html`` in the base image."""

_PATH = "/bin:/sbin:/usr/bin:/usr/sbin"
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "hosts: files dns\nnetworks: files\n",
    "etc/os-release": 'NAME="labkit busybox"\nID=labkit-busybox\nVERSION_ID="1"\n',
    "var/www/index.html": WEB_PAGE,
}
_DIRS = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
         "etc": 0o755, "dev": 0o755, "proc": 0o555, "sys": 0o555, "root": 0o700,
         "tmp": 0o1777, "run": 0o755, "var": 0o755, "var/www": 0o755}
_MTIME = 1_500_000_000  # fixed, so two builds from one busybox give the same tar bytes


def busybox_path() -> Path:
    """The host's statically linked busybox (Debian package ``busybox-static``)."""
    candidates = [os.environ.get("LABKIT_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox",
                  shutil.which("busybox")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and _is_static(Path(candidate)):
            return Path(candidate)
    found = [c for c in candidates if c and os.path.isfile(c)]
    why = (f"{found[0]} is dynamically linked and would not run alone in an image"
           if found else "busybox is not installed")
    raise ToolMissing(f"cannot build {BASE_IMAGE}: {why}", obj="busybox",
                      op="build base image",
                      remedy="as root: apt-get install busybox-static (.ci/docker.sh installs it)")


def _is_static(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only (the course's hosts)
                return False
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return sorted({a.strip() for a in out.stdout.split() if a.strip() and "/" not in a}
                  - {"busybox"})


def rootfs_tar(busybox: Path | None = None) -> bytes:
    """The image's root file system as an uncompressed tar stream (deterministic)."""
    busybox = busybox or busybox_path()
    data = busybox.read_bytes()
    buf = io.BytesIO()

    def entry(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.size, info.linkname = kind, mode, size, link
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = _MTIME
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in _DIRS.items():
            tar.addfile(entry(name, tarfile.DIRTYPE, mode))
        tar.addfile(entry("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for applet in _applets(busybox):
            tar.addfile(entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        tar.addfile(entry("usr/bin/env", tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        for name, text in _FILES.items():
            raw = text.encode()
            tar.addfile(entry(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))
    return buf.getvalue()


def _find(client: Any, tag: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def base_image_present(client: Any, tag: str = BASE_IMAGE) -> bool:
    """Whether the engine already holds the base image. ``docker image inspect TAG``."""
    return _find(client, tag) is not None


def ensure_base_image(client: Any = None, *, tag: str = BASE_IMAGE, rebuild: bool = False) -> Any:
    """The base image (a ``docker.models.images.Image``), built first if it is missing.

    ``docker import`` of :func:`rootfs_tar`, with ``CMD ["sh"]``, ``PATH`` and the
    course's label, tagged ``tag``. Needs no network.
    """
    if client is None:
        from .engine import connect

        client = connect()
    image = _find(client, tag)
    if image is not None and not rebuild:
        return image
    busybox = busybox_path()
    digest = hashlib.sha256(busybox.read_bytes()).hexdigest()
    # Not the course label: containers inherit their image's labels, and that label
    # must mean "this container was made by the course", not "made from its image".
    labels = {IMAGE_LABEL: "base", "io.labkit.busybox.sha256": digest}
    changes = ['CMD ["sh"]', f"ENV PATH={_PATH}", "WORKDIR /",
               "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())]
    repository, _, version = tag.rpartition(":")
    client.api.import_image_from_data(rootfs_tar(busybox), repository=repository or tag,
                                      tag=version if repository else None, changes=changes)
    fresh = _find(client, tag)
    if fresh is None:  # pragma: no cover - the engine accepted the import but lost it
        raise RuntimeError(f"docker import did not produce {tag}")
    if image is not None and image.id != fresh.id:  # the old build, now untagged
        import docker.errors

        try:
            client.images.remove(image.id)
        except docker.errors.APIError:
            pass  # still used by a container: it goes when that container goes
    return fresh
