"""Every committed notebook reads without a kernel: figures as images, widgets as snapshots.

Each notebook in notebooks/, solutions/ and exercises/ is rendered to HTML with
nbconvert, nothing executed (what nbviewer, a course website or an exported HTML
shows). Every plotly figure must carry a static image that the HTML shows, and every
widget output a static snapshot instead of ``VBox(children=...)`` or an empty box.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for folder in ("notebooks", "solutions", "exercises") for p in (ROOT / folder).glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_REPRS = ("VBox(children=", "HBox(children=", "Tab(children=", "<labkit.widgets.")


def _outputs(nb: nbformat.NotebookNode):
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if "data" in output:
                yield index, output["data"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_renders_without_a_kernel(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    figures = widgets = 0
    for index, data in _outputs(nb):
        if PLOTLY in data:
            figures += 1
            assert "image/png" in data or "image/svg+xml" in data, \
                f"cell {index}: a plotly figure with no static image (is labkit imported, Chromium installed?)"
            if "image/png" in data:
                assert data["image/png"][:80] in body, f"cell {index}: the figure's PNG is not in the HTML"
        text = str(data.get("text/plain", ""))
        if WIDGET in data or text.startswith(WIDGET_REPRS):
            widgets += 1
            assert "text/html" in data and "labkit-snapshot" in data["text/html"], \
                f"cell {index}: a widget output without a static snapshot"
            assert WIDGET not in data, f"cell {index}: a widget reference to a model that died with its kernel"
    assert "VBox(children=" not in body and "HBox(children=" not in body
    assert 'type="application/vnd.jupyter.widget-view+json"' not in body
    if figures:
        assert body.count("data:image/png;base64,") >= figures
    assert "labkit-snapshot" in body or widgets == 0


def test_every_committed_notebook_is_checked() -> None:
    assert len(NOTEBOOKS) >= 20, NOTEBOOKS


def test_readme_links_use_the_one_repository_address() -> None:
    """Binder and Codespaces links name the repository of pyproject's [project.urls], never a placeholder."""
    import re
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    repo = urls.get("Repository", "")
    match = re.match(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?$", repo)
    home = match.group(1) if match else None
    texts = [(ROOT / "README.md").read_text()] + [p.read_text() for p in NOTEBOOKS]
    for text in texts:
        assert "OWNER/REPO" not in text
        for found in re.findall(r"(?:mybinder\.org/v2/gh|codespaces\.new)/([\w.-]+/[\w.-]+)", text):
            assert found == home, f"a link names {found}, but pyproject.toml's Repository is {repo or 'not set'}"


def test_learning_loop_questions_answers_and_links() -> None:
    """Each walkthrough ends with questions and links its exercise; the solution answers, the student copy does not."""
    for walkthrough in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(walkthrough, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "## Questions to think about" in text, walkthrough.name
        number = walkthrough.name[:2]
        exercise = next((ROOT / "exercises").glob(f"{number}-*.ipynb"), None)  # same number, maybe another name
        if exercise is not None:
            assert f"../exercises/{exercise.name}" in nb.cells[-1].source, walkthrough.name  # navigation
            student = nbformat.read(exercise, as_version=4)
            solution = nbformat.read(ROOT / "solutions" / exercise.name, as_version=4)
            heading = f"## Answers to the questions of walkthrough {number}"
            assert any(heading in c.source for c in solution.cells), f"{walkthrough.name}: no answers in the solution"
            assert not any(heading in c.source for c in student.cells), f"{walkthrough.name}: answers in the student copy"
            assert f"../notebooks/{walkthrough.name}" in student.cells[-1].source
        else:
            assert "<details>" in text, f"{walkthrough.name}: no exercise, so the answers belong in the walkthrough"
