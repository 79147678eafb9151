"""What labkit adds to a Jupyter kernel: readable errors and figures that read everywhere.

:func:`install` runs by itself when ``labkit`` is imported inside an IPython kernel
(nothing happens in a plain Python process, and nothing heavy is imported). It adds:

* **Errors that teach.** A :class:`labkit.LabkitError` raised in a cell shows what
  went wrong and what to do, not forty lines through labkit's internals::

      InvalidName: lab name 'my lab' is not valid
      What to do: use letters, digits, '-', '_' or '.'
      (full traceback: run %tb in the next cell)

  The cell still fails as usual (papermill, nbval and the grader see the error with
  its type and message); ``%tb`` prints the complete traceback on demand, and
  ``labkit.ipython.full_tracebacks(True)`` shows it every time.
* **Static figures.** Every plotly figure shown by a cell (its last expression, or
  ``fig.show()`` once plotly is imported) also carries a PNG rendering (kaleido, which
  needs Chromium; skipped without one), beside plotly's own interactive output. JupyterLab and VS Code still show the interactive figure;
  GitHub, nbviewer, nbconvert HTML and PDF show the picture. Off with
  ``static_figures(False)`` or the environment variable ``LABKIT_STATIC_FIGURES=0``.
* **Live displays that end as snapshots.** An object registered with :func:`track`
  (labkit's widgets do this when displayed) is asked after every cell whether its
  static picture changed (``_labkit_refresh_display()``), so the notebook file keeps
  a meaningful snapshot (the diagram, the last result) rather than ``VBox(...)``.

For authors of new presentation code: draw with :mod:`labkit.diagrams` (SVG, no
browser needed) where you can; return plotly figures from functions and let the
cell display them (the PNG is added here); give a widget class
``_repr_mimebundle_`` with a ``text/html`` snapshot and call :func:`track` (see
:class:`labkit.widgets._base.Panel`, which does both).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import weakref
from typing import Any

from .errors import CommandFailed, LabkitError

__all__ = ["install", "full_tracebacks", "static_figures", "static_png", "figure_bundle", "show_figure",
           "teaching_traceback", "track"]

_state: dict[str, Any] = {"installed": None, "full": False, "static": None}
_tracked: "weakref.WeakSet[Any]" = weakref.WeakSet()
_RED, _GREEN, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[2m", "\x1b[1m", "\x1b[0m"


def teaching_traceback(exc: LabkitError) -> list[str]:
    """The few lines shown for a LabkitError in a notebook (ANSI colours, like IPython's)."""
    lines = [f"{_RED}{_BOLD}{type(exc).__name__}{_RESET}: {exc.message}"]
    if isinstance(exc, CommandFailed):
        for name, text in (("stderr", exc.stderr), ("stdout", exc.stdout)):
            tail = [ln for ln in (text or "").strip().splitlines() if ln.strip()][-6:]
            if tail:
                lines.append(f"{_DIM}{name}:{_RESET}\n" + "\n".join(f"    {ln}" for ln in tail))
    if exc.remedy:
        lines.append(f"{_GREEN}What to do:{_RESET} {exc.remedy}")
    lines.append(f"{_DIM}(full traceback: run %tb in the next cell){_RESET}")
    return ["\n".join(lines)]


def _handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # what %tb shows
    if sys.version_info >= (3, 12):
        sys.last_exc = value
    if _state["full"] or not isinstance(value, LabkitError):
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    else:
        stb = teaching_traceback(value)
    shell._showtraceback(etype, value, stb)  # publishes the cell's error output (ename, evalue, lines)
    return stb


def full_tracebacks(enabled: bool = True) -> None:
    """Show the complete traceback of every LabkitError (``False``: the short form again)."""
    _state["full"] = bool(enabled)


# -- static figures ---------------------------------------------------------------------


def static_figures(enabled: bool | None = True) -> None:
    """Add (True), do not add (False) or decide by availability (None) a PNG to each plotly figure."""
    _state["static"] = enabled


def _static_wanted() -> bool:
    if os.environ.get("LABKIT_STATIC_FIGURES", "1").strip().lower() in ("0", "no", "false", "off"):
        return False
    if _state["static"] is False:
        return False
    return _browser() is not None


def _browser() -> str | None:
    path = os.environ.get("BROWSER_PATH")
    if path and os.path.exists(path):
        return path
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def static_png(fig: Any) -> bytes | None:
    """A PNG of a plotly figure (kaleido with Chromium), or None where it cannot be made."""
    if not _static_wanted():
        return None
    for noisy in ("choreographer", "kaleido", "logistro"):  # their warnings would land in the cell's output
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        return fig.to_image(format="png")
    except Exception:  # noqa: BLE001 - no browser, a sandbox refusing it: the interactive figure remains
        return None


def figure_bundle(fig: Any) -> dict[str, Any]:
    """The MIME bundle of a plotly figure: plotly's own (interactive) plus a PNG if one can be made."""
    _configure_plotly()
    bundle = dict(fig._repr_mimebundle_())
    png = None if "image/png" in bundle else static_png(fig)
    if png is not None:
        import base64

        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else "figure"
    bundle.setdefault("text/plain", f"<plotly figure: {title}>")
    return bundle


def show_figure(fig: Any) -> None:
    """Display a plotly figure with its static rendering (what a cell's last expression does)."""
    from IPython.display import publish_display_data

    publish_display_data(figure_bundle(fig))


def _configure_plotly(*_: Any) -> None:
    """Once plotly is loaded, add a PNG to its default renderers, so ``fig.show()`` carries one too."""
    pio = sys.modules.get("plotly.io")
    if pio is None and "plotly" in sys.modules:
        # plotly loads plotly.io lazily, at the first fig.show(): too late for that figure
        import plotly.io as pio
    if pio is None or _state.get("plotly") is pio:
        return
    try:
        from plotly.io._base_renderers import MimetypeRenderer

        class StaticPNG(MimetypeRenderer):  # type: ignore[misc]
            """plotly renderer adding ``image/png`` (nothing where no PNG can be made)."""

            def to_mimebundle(self, fig_dict: Any) -> dict[str, Any]:
                import base64

                png = static_png(_AsFigure(fig_dict))
                return {"image/png": base64.b64encode(png).decode("ascii")} if png else {}

        pio.renderers["labkit_png"] = StaticPNG()
        default = pio.renderers.default or "plotly_mimetype"
        if "labkit_png" not in default.split("+"):
            pio.renderers.default = default + "+labkit_png"
        _state["plotly"] = pio
    except Exception:  # noqa: BLE001 - another plotly version: the last-expression path still works
        _state["plotly"] = pio


class _AsFigure:
    """A figure dict with the one method :func:`static_png` calls."""

    def __init__(self, fig_dict: Any) -> None:
        self.fig_dict = fig_dict

    def to_image(self, **kwargs: Any) -> bytes:
        import plotly.io as pio

        return pio.to_image(self.fig_dict, **kwargs)


# -- live displays ----------------------------------------------------------------------


def track(obj: Any) -> None:
    """Ask ``obj._labkit_refresh_display()`` after every cell (while ``obj`` lives)."""
    _tracked.add(obj)


def _after_cell(*_: Any) -> None:
    for obj in list(_tracked):
        try:
            obj._labkit_refresh_display()
        except Exception:  # noqa: BLE001 - a closed widget must not break the next cell
            pass


# -- installation -----------------------------------------------------------------------


def install(shell: Any = None) -> bool:
    """Install the error display, static figures and snapshot refresh in an IPython shell.

    Returns True if installed (or already), False outside IPython. Idempotent.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        get = getattr(ipython, "get_ipython", None)
        shell = get() if callable(get) else None
    if shell is None:
        return False
    if _state["installed"] is shell:
        return True
    shell.set_custom_exc((LabkitError,), _handler)
    # plotly figures display themselves (_ipython_display_); this takes their place, by name,
    # so plotly is not imported here
    shell.display_formatter.ipython_display_formatter.for_type_by_name(
        "plotly.basedatatypes", "BaseFigure", show_figure)
    _configure_plotly()
    try:
        shell.events.register("post_run_cell", _after_cell)
        shell.events.register("pre_run_cell", _configure_plotly)  # fig.show() once plotly is imported
    except Exception:  # noqa: BLE001 - a shell without events still gets the rest
        pass
    _state["installed"] = shell
    return True
