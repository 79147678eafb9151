"""Imported once by every sandboxed kernel at start-up (``IPKernelApp.exec_lines``).

ipykernel buffers ``print`` output and sends it every 0.2 s, however much piled up:
a notebook printing in a tight loop makes messages of hundreds of megabytes, which
exhaust the kernel's memory limit or are too large for the grader to accept, so the
run would end as a timeout with no useful reason. Here the kernel's stdout and stderr
flush (and wait for the send) every :data:`CHUNK` characters, which keeps each
message small and lets the grader count the output and stop it at its limit.

This is a courtesy to well-meaning notebooks, not a security boundary: the grader
does not rely on it (oversized messages are refused, and the time limit holds).
"""

from __future__ import annotations

import sys
from typing import Any

CHUNK = 64 * 1024


def _throttle(stream: Any) -> None:
    write = stream.write
    pending = 0

    def write_and_flush(text: str) -> Any:
        nonlocal pending
        written = write(text)
        pending += len(text)
        if pending >= CHUNK:
            pending = 0
            stream.flush()
        return written

    stream.write = write_and_flush


for _stream in (sys.stdout, sys.stderr):
    if _stream is not None and type(_stream).__module__.startswith("ipykernel"):
        _throttle(_stream)
