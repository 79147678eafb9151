"""Plumbing shared by the widgets: where a panel finds its lab, background work, messages.

* :class:`Watcher` tells panels when a lab changes. It is told at once by the
  builder after each change, and also looks every few seconds at ``lab.describe()``
  (so changes made from code, ``lab["c1"].set_down("eth0")``, show up too).
* :class:`Tasks` runs one long operation at a time, in a worker thread when it was
  started by a click (the notebook stays responsive and shows progress), or in the
  caller's thread when called from code (so a cell waits for it).
* :func:`message` and :func:`error_message` write status lines in plain words; an
  error shows the :class:`labkit.LabkitError`'s ``message`` and ``remedy``.

Lab methods may be called from any thread: the kernel's main thread never talks
netlink itself (the lab's supervisor does), and the client matches replies to
requests, so a widget's worker and a cell can use one lab at once.
"""

from __future__ import annotations

import html
import json
import sys
import threading
import time
import traceback
import weakref
from typing import TYPE_CHECKING, Any, Callable, Protocol

import ipywidgets as W

from ..errors import LabkitError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..lab import Lab

Listener = Callable[["dict[str, Any] | None"], None]

__all__ = ["Watcher", "Tasks", "message", "error_message", "show_figure", "show_html", "watcher_for"]


class LabHolder(Protocol):
    """What a panel can be given instead of a Lab: something whose lab comes and goes."""

    @property
    def lab(self) -> "Lab | None": ...

    @property
    def watcher(self) -> "Watcher": ...


class Watcher:
    """Calls its listeners with ``lab.describe()`` (or ``None``) whenever the lab changes.

    ``get_lab`` returns the lab to watch (or ``None``: no lab now); ``plan`` (optional)
    returns a plan's description to show while there is no lab. ``interval`` is how
    often to look for changes made elsewhere (seconds; ``None`` or 0: only when told).
    """

    def __init__(self, get_lab: Callable[[], "Lab | None"], *, interval: float | None = 2.0,
                 plan: Callable[[], "dict[str, Any] | None"] | None = None) -> None:
        self._get_lab = get_lab
        self._plan = plan
        self.interval = interval
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._last: Any = object()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self) -> "dict[str, Any] | None":
        """The lab's description now (a plan's, marked ``planned``, if there is no lab)."""
        lab = self._get_lab()
        if lab is not None and not lab.closed:
            for _ in range(3):
                try:
                    return lab.describe()
                except RuntimeError:  # the lab's node dict changed under us: look again
                    time.sleep(0.01)
                except LabkitError:
                    break
            return None
        if self._plan is not None:
            data = self._plan()
            if data is not None and data.get("nodes"):
                return {**data, "planned": True}
        return None

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)
            start = self.interval and (self._thread is None or not self._thread.is_alive())
        if start:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="labkit-widgets-watch", daemon=True)
            self._thread.start()

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners:
                self._stop.set()

    def stop(self) -> None:
        """Stop looking for changes (listeners stay; :meth:`changed` still tells them)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def changed(self) -> "dict[str, Any] | None":
        """Look now and tell every listener (even if nothing seems different)."""
        data = self.snapshot()
        self._emit(data, force=True)
        return data

    def _emit(self, data: "dict[str, Any] | None", *, force: bool) -> None:
        with self._lock:
            if not force and data == self._last:
                return
            self._last = data
            listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(data)
                except Exception:  # noqa: BLE001 - one broken panel must not stop the others
                    traceback.print_exc()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval or 2.0):
            try:
                self._emit(self.snapshot(), force=False)
            except Exception:  # noqa: BLE001 - a lab closing under us; look again later
                pass


_WATCHERS: "weakref.WeakKeyDictionary[Any, Watcher]" = weakref.WeakKeyDictionary()


def watcher_for(source: Any, interval: float | None = 2.0) -> Watcher:
    """The watcher of a builder or workbench, or one shared by every panel of a plain Lab."""
    own = getattr(source, "watcher", None)
    if isinstance(own, Watcher):
        return own
    if source not in _WATCHERS:
        ref = weakref.ref(source)
        _WATCHERS[source] = Watcher(lambda: ref(), interval=interval)
    return _WATCHERS[source]


def current_lab(source: Any) -> "Lab | None":
    """The lab a panel works on now: the source itself, or the builder's current lab."""
    from ..lab import Lab

    if isinstance(source, Lab):
        return source
    lab = getattr(source, "lab", None)
    return lab if isinstance(lab, Lab) else None


class Tasks:
    """One operation at a time; in a worker thread for clicks, in the caller's for code."""

    def __init__(self, on_error: Callable[[BaseException], None],
                 on_done: Callable[[], None] | None = None) -> None:
        self._on_error = on_error
        self._on_done = on_done
        self._lock = threading.Lock()
        self._busy = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._busy

    def run(self, work: Callable[[], None], *, background: bool) -> bool:
        """Start ``work``; False (and nothing done) if another operation is running."""
        with self._lock:
            if self._busy:
                return False
            self._busy = True
        if background:
            self._thread = threading.Thread(target=self._guarded, args=(work,),
                                            name="labkit-widgets-task", daemon=True)
            self._thread.start()
        else:
            self._guarded(work)
        return True

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - shown in the widget, in plain words
            try:
                self._on_error(exc)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        finally:
            self._busy = False
            if self._on_done is not None:
                try:
                    self._on_done()
                except Exception:  # noqa: BLE001
                    traceback.print_exc()

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait for the running operation (if any); True if none is running now."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return not self._busy


# -- words and outputs ----------------------------------------------------------------

_STYLES = {
    "info": ("#31708f", "#d9edf7"),
    "busy": ("#6b5900", "#fcf8e3"),
    "ok": ("#2b6a2f", "#dff0d8"),
    "error": ("#8a1f1f", "#f2dede"),
    "idle": ("#555", "#f5f5f5"),
}


def message(kind: str, text: str, *, detail: str = "") -> str:
    """An HTML status box: ``kind`` is info, busy, ok, error or idle; text is escaped."""
    fg, bg = _STYLES.get(kind, _STYLES["info"])
    body = html.escape(text).replace("\n", "<br>")
    if detail:
        body += f"<div style='margin-top:4px'>{detail}</div>"
    return (f"<div class='labkit-status labkit-{kind}' style='color:{fg};background:{bg};"
            f"border-left:4px solid {fg};padding:6px 10px;margin:4px 0;line-height:1.4'>{body}</div>")


def explain_error(exc: BaseException) -> tuple[str, str | None]:
    """(what went wrong, what to do) in plain words."""
    if isinstance(exc, LabkitError):
        return exc.message, exc.remedy
    return f"{type(exc).__name__}: {exc}", "this looks like a bug in labkit; please report it with the details"


def error_message(exc: BaseException, *, doing: str = "") -> str:
    """An HTML error box: what we were doing, what went wrong, what to do."""
    what, remedy = explain_error(exc)
    lines = [f"<b>{html.escape(doing[:1].upper() + doing[1:])} failed.</b>" if doing else "<b>Failed.</b>",
             f"What went wrong: {html.escape(what)}"]
    if remedy:
        lines.append(f"What to do: {html.escape(remedy)}")
    if not isinstance(exc, LabkitError):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        lines.append(f"<details><summary>details</summary><pre>{html.escape(tb)}</pre></details>")
    fg, bg = _STYLES["error"]
    return (f"<div class='labkit-status labkit-error' style='color:{fg};background:{bg};"
            f"border-left:4px solid {fg};padding:6px 10px;margin:4px 0;line-height:1.4'>"
            + "<br>".join(lines) + "</div>")


def plural(n: int, word: str) -> str:
    """``1 link``, ``2 links``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def code_block(text: str, *, height: str | None = None) -> str:
    style = "margin:0;padding:6px 8px;background:#f7f7f7;border:1px solid #e0e0e0;font-size:12px;" \
            "line-height:1.35;white-space:pre;overflow:auto"
    if height:
        style += f";max-height:{height}"
    return f"<pre class='labkit-code' style='{style}'>{html.escape(text)}</pre>"


def show_figure(out: W.Output, fig: "go.Figure", *, static: str | None = None) -> None:
    """Put a plotly figure into an Output widget (works from any thread).

    Written as plotly's own MIME bundle (what JupyterLab, VS Code and nbviewer render),
    without going through ``plotly.io``'s renderers, which import heavy modules.
    ``static`` (SVG or HTML) is what the panel's static snapshot shows in its place;
    without it the snapshot shows a PNG of the figure where one can be made.
    """
    out._labkit_figure = fig  # type: ignore[attr-defined]
    out._labkit_static = static  # type: ignore[attr-defined]
    spec = json.loads(fig.to_json())
    spec["config"] = {"displaylogo": False, "responsive": True}
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else "figure"
    data = {"application/vnd.plotly.v1+json": spec, "text/plain": f"<plotly figure: {title}>"}
    out.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)


def show_html(out: W.Output, markup: str, text: str = "") -> None:
    """Put rich HTML (a table, say) into an Output widget, styled like a cell's output."""
    out.outputs = ({"output_type": "display_data",
                    "data": {"text/html": markup, "text/plain": text or "<table>"}, "metadata": {}},)


def clear(out: W.Output) -> None:
    out.outputs = ()


def _cell_key() -> tuple[str, int] | None:
    """(cell id, execution count) of the notebook cell running now, if the front end says."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    if shell is None:
        return None
    cell = (getattr(shell, "parent_header", None) or {}).get("metadata", {}).get("cellId")
    return (str(cell), int(shell.execution_count)) if cell else None


_BY_CELL: dict[str, tuple[int, "weakref.ref[Any]"]] = {}


def supersede(owner: Any) -> None:
    """Close what an earlier run of the same notebook cell made (its lab would live on).

    Re-running ``wb = workbench(...)`` rebinds ``wb``, but the old widgets keep the old
    builder, and so its lab and supervisor, alive until the kernel ends. A second
    object made by the same run of a cell is left alone.
    """
    key = _cell_key()
    if key is None:
        return
    cell, count = key
    previous = _BY_CELL.get(cell)
    if previous is not None and previous[0] != count:
        old = previous[1]()
        if old is not None and old is not owner:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - already closed, or its kernel objects are gone
                pass
    if previous is None or previous[0] != count:
        _BY_CELL[cell] = (count, weakref.ref(owner))


class Panel:
    """Common behaviour: display as a widget with a static snapshot, close from code.

    Displayed (last line of a cell, or ``display(panel)``), a panel publishes the live
    widget together with a ``text/html`` snapshot of it (:func:`~._static.static_html`),
    and refreshes that snapshot after every cell, so a saved notebook shows the diagram
    and the last results where no kernel runs. :meth:`_freeze` (called first thing in
    ``close()``) keeps the snapshot of the panel as it was; once closed, the output holds
    only that snapshot (a closed widget would otherwise show as a blank space).
    """

    widget: W.Widget

    def snapshot_html(self) -> str:
        """Static HTML of the panel as it is now (or as it was when it was closed)."""
        frozen = getattr(self, "_frozen", None)
        if frozen is not None:
            return frozen
        from ._static import static_html

        return ("<div class='labkit-snapshot' style='border:1px solid #ddd;padding:6px'>"
                + static_html(self.widget)
                + "<div style='color:#888;font-size:11px;margin-top:4px'>Static copy of the widget after the "
                  "last cell ran; run the notebook for the live widget.</div></div>")

    def _bundle(self) -> dict[str, Any]:
        data: dict[str, Any] = {"text/html": self.snapshot_html(), "text/plain": repr(self)}
        if getattr(self, "_frozen", None) is None:
            data.update({k: v for k, v in self.widget._repr_mimebundle_().items() if k != "text/plain"})
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._bundle()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        from .. import ipython

        handle = display(self._bundle(), raw=True, display_id=True)
        self.__dict__.setdefault("_displays", []).append(handle)
        self._shown = self.snapshot_html()
        ipython.track(self)

    def _labkit_refresh_display(self) -> None:
        """After a cell: republish the snapshot where it changed (called by labkit.ipython)."""
        if getattr(self, "_frozen", None) is not None or not getattr(self, "_displays", None):
            return
        now = self.snapshot_html()
        if now != getattr(self, "_shown", None):
            self._shown = now
            bundle = self._bundle()
            for handle in self._displays:
                handle.update(bundle, raw=True)

    def _freeze(self) -> None:
        """Keep the snapshot as it is now: the panel is about to close."""
        if getattr(self, "_frozen", None) is None and getattr(self, "_displays", None):
            try:
                self._frozen = self.snapshot_html().replace(
                    "Static copy of the widget after the last cell ran; run the notebook for the live widget.",
                    "Static copy of the widget as it was when it was closed; run the notebook for the live widget.")
            except Exception:  # noqa: BLE001 - a snapshot is a nicety; closing must go on
                self._frozen = ""

    def _close_widgets(self) -> None:
        self._freeze()
        for handle in getattr(self, "_displays", []):
            try:
                handle.update(self._bundle(), raw=True)  # the snapshot alone: the widget is gone
            except Exception:  # noqa: BLE001 - no kernel to publish to
                pass
        stack = [self.widget]
        while stack:
            w = stack.pop()
            stack.extend(getattr(w, "children", ()) or ())
            try:
                w.close()
            except Exception:  # noqa: BLE001 - closing twice, or no kernel
                pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]
