"""HTML pages of a gradebook: the instructor's report and one feedback page per student.

``report.html`` has the summary table (a row per submission, a column per checkpoint)
and, per student, the status, every checkpoint's result and reason, the flags, and a
link to the executed notebook. ``feedback/<student>.html`` is the same section
without the flags, with hints on failed checkpoints, to hand back to the student.
Pages are self-contained (inline CSS, no scripts) and deterministic.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from labkit.grading.gradebook import Gradebook, SubmissionGrade, _num

__all__ = ["render_feedback", "render_report", "write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.passed{background:#dafbe1}.failed{background:#ffebe9}.not-run{background:#f6f8fa;color:#656d76}
.status-ok{color:#1a7f37;font-weight:bold}.status-bad{color:#cf222e;font-weight:bold}
.flags{color:#9a6700}
section{border-top:2px solid #d0d7de;margin-top:2em}
"""

_MARK = {"passed": "&#10004;", "failed": "&#10008;", "not-run": "&ndash;"}


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _status(row: SubmissionGrade) -> str:
    cls = "status-ok" if row.status == "ok" else "status-bad"
    reason = f" &mdash; {escape(row.reason)}" if row.reason else ""
    return f'<span class="{cls}">{escape(row.status)}</span>{reason}'


def _student_section(book: Gradebook, row: SubmissionGrade, *, for_student: bool) -> str:
    lines = [f'<section id="{escape(row.student)}">',
             f"<h2>{escape(row.student)}: {_num(row.score)} / {_num(row.total)} points</h2>",
             f"<p>Run: {_status(row)}</p>"]
    if row.executed and not for_student:
        lines.append(f'<p>Executed notebook: <a href="{escape(row.executed)}">'
                     f"{escape(row.executed)}</a></p>")
    lines.append("<table><tr><th>Checkpoint</th><th>Result</th><th>Points</th>"
                 "<th>Why</th></tr>")
    for spec in book.checkpoints:
        out = row.outcome(spec.id)
        why = escape(out.reason)
        if for_student and out.status != "passed" and spec.hint:
            why += f"<br><b>Hint:</b> {escape(spec.hint)}"
        title = escape(spec.title) + (" <i>(hidden)</i>" if spec.hidden and not for_student else "")
        lines.append(f'<tr class="{out.status}"><td>{escape(spec.id)} {title}</td>'
                     f"<td>{_MARK[out.status]} {escape(out.status)}</td>"
                     f"<td>{_num(out.score)} / {_num(out.points)}</td><td>{why}</td></tr>")
    lines.append("</table>")
    if row.flags and not for_student:
        items = "".join(f"<li>{escape(f)}</li>" for f in row.flags)
        lines.append(f'<div class="flags"><b>Flags for review:</b><ul>{items}</ul></div>')
    lines.append("</section>")
    return "\n".join(lines)


def render_report(book: Gradebook) -> str:
    """The instructor's report: summary table, then a section per submission."""
    head = "".join(f'<th title="{escape(c.title)}">{escape(c.id)}</th>' for c in book.checkpoints)
    rows = []
    for row in book.rows:
        cells = "".join(f'<td class="{row.outcome(c.id).status}">{_num(row.outcome(c.id).score)}'
                        "</td>" for c in book.checkpoints)
        rows.append(f'<tr><td><a href="#{escape(row.student)}">{escape(row.student)}</a></td>'
                    f"<td>{_status(row)}</td><td>{_num(row.score)} / {_num(row.total)}</td>"
                    f"{cells}<td>{len(row.flags) or ''}</td></tr>")
    body = [f"<h1>Gradebook: {escape(book.exercise)}</h1>",
            f"<p>{len(book.rows)} submissions, {len(book.checkpoints)} checkpoints, "
            f"{_num(book.total_points)} points.</p>",
            *(f'<p class="notes">{escape(note)}</p>' for note in book.notes),
            f"<table><tr><th>Student</th><th>Run</th><th>Score</th>{head}<th>Flags</th></tr>",
            *rows, "</table>",
            *(_student_section(book, row, for_student=False) for row in book.rows)]
    return _page(f"Gradebook: {book.exercise}", "\n".join(body))


def render_feedback(book: Gradebook, row: SubmissionGrade) -> str:
    """The page handed back to one student."""
    body = f"<h1>{escape(book.exercise)}</h1>\n" + _student_section(book, row, for_student=True)
    return _page(f"{book.exercise}: feedback for {row.student}", body)


def write_report(book: Gradebook, folder: Path) -> dict[str, Path]:
    """Write ``report.html`` and ``feedback/<student>.html`` into ``folder``."""
    report = folder / "report.html"
    report.write_text(render_report(book), encoding="utf-8")
    feedback = folder / "feedback"
    feedback.mkdir(exist_ok=True)
    for row in book.rows:
        (feedback / f"{row.student}.html").write_text(render_feedback(book, row),
                                                      encoding="utf-8")
    return {"report": report, "feedback": feedback}
