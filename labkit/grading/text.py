"""Text from a submission, made safe to show and to store.

A notebook controls the text of its errors, outputs and answers, and through them
parts of the grader's reasons and flags. Shown raw, ANSI/OSC escape sequences would
drive the instructor's terminal (recolour, retitle, hide lines, forge a progress
line with a carriage return) and bidirectional-override characters would reorder
what a reader sees. :func:`printable` writes every such character as a visible
escape (``\\x1b``, ``\\r``, ``\\u202e``); :func:`csv_cell` also keeps spreadsheets
from reading a cell as a formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``).
"""

from __future__ import annotations

import re

__all__ = ["csv_cell", "printable"]

# C0 controls (but tab and newline, handled below), DEL, C1 controls, bidi controls,
# zero-width and other invisible format characters, line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u2069\ufeff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character written as an escape.

    With ``lines=False`` (reasons, flags: one line each) newlines and tabs become
    ``\\n`` and ``\\t`` too; with ``lines=True`` (logs) they are kept.
    """
    text = _UNSAFE.sub(_escape, str(text))
    if not lines:
        text = text.replace("\n", "\\n").replace("\t", "\\t")
    return text


_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(text: str) -> str:
    """A text cell for CSV: printable, and never read as a formula by a spreadsheet."""
    text = printable(text)
    return "'" + text if text.startswith(_FORMULA) else text
