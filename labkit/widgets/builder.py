"""The topology builder: plan a lab from forms or a template, build it, tear it down.

::

    from labkit.widgets import builder
    b = builder("two containers on a bridge (docker0)")
    b                      # shows the widget: forms, plan, Build / Tear down, status
    b.build()              # the same as clicking Build (waits when called from code)
    b.lab["c1"].ping("172.17.0.3")
    print(b.code())        # the labkit code that builds the same lab
    b.close()              # tears the lab down and closes the widget

Until Build is clicked, every form adds a step to the *plan* (checked at once:
names, addresses, duplicates), and the Python and ``ip`` equivalents are shown.
Once built, each form change is applied to the running lab immediately.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W

from ..errors import LabkitError
from ..lab import Lab
from . import templates as _templates
from ._base import Panel, Tasks, Watcher, code_block, error_message, message, plural, supersede
from ._static import NO_SNAPSHOT
from .plan import Plan, Step

EMPTY = "empty lab (build it with the forms)"

__all__ = ["TopologyBuilder", "builder"]


class TopologyBuilder(Panel):
    """A widget that plans, builds and tears down one lab (see the module docstring).

    Args:
        template: a label of :data:`~labkit.widgets.templates.TEMPLATES` (or its short
            name, e.g. ``"docker0"``) to start from; ``None`` for an empty plan.
        name: the lab's name (default: the template's short name, or ``"mylab"``).
        mode, workdir: passed to :class:`labkit.Lab`.
        watch: how often (seconds) the panels attached to this builder look for changes
            made from code; ``None`` to look only when the builder changes the lab.

    The builder owns the lab it builds: :meth:`teardown` (the Tear down button) closes
    it, and so does :meth:`close`, which also closes the widget.
    """

    def __init__(self, template: str | None = None, *, name: str | None = None,
                 mode: str = "auto", workdir: "str | os.PathLike[str] | None" = None,
                 watch: float | None = 2.0) -> None:
        self.mode = mode
        self.workdir = Path(workdir) if workdir is not None else None
        self._lab: Lab | None = None
        self.plan = Plan(name or "mylab")
        self.error: BaseException | None = None
        self.status_text = ""
        self.watcher = Watcher(lambda: self._lab, interval=watch, plan=lambda: self.plan.describe())
        self._tasks = Tasks(self._failed, self._update_buttons)
        supersede(self)  # re-running the cell that made this builder closes the previous one's lab
        self._make_widgets()
        if template is not None:
            self.use_template(template, name=name)
        else:
            self._refresh_plan_views()
            self._set_status("idle", "No lab yet. Pick a template or add nodes with the forms, then click Build.")
        self._update_buttons()

    # -- the widget -------------------------------------------------------------------

    def _make_widgets(self) -> None:
        lay = W.Layout
        self.template = W.Dropdown(options=[EMPTY, *_templates.TEMPLATES], value=EMPTY,
                                   description="Start from", style={"description_width": "80px"},
                                   layout=lay(width="360px"))
        self.name = W.Text(value=self.plan.name, description="Lab name",
                           style={"description_width": "70px"}, layout=lay(width="220px"))
        self.template.observe(self._on_template, names="value")
        self.name.observe(self._on_name, names="value")

        # forms
        self.node_name = W.Text(placeholder="e.g. c3", description="Name", layout=lay(width="200px"))
        self.node_kind = W.ToggleButtons(options=["host", "router", "switch"], value="host",
                                         style={"button_width": "70px"},
                                         tooltips=["a host or container (no forwarding)",
                                                   "forwards packets between its interfaces",
                                                   "a namespace holding one bridge, br0"])
        self.add_node_button = W.Button(description="Add node", icon="plus", button_style="info")
        self.add_node_button.on_click(lambda _: self._form(self._add_node_from_form))
        node_form = W.VBox([W.HBox([self.node_name, self.node_kind]), self.add_node_button])

        self.link_a = W.Dropdown(description="From", layout=lay(width="200px"))
        self.link_b = W.Dropdown(description="To", layout=lay(width="200px"))
        self.link_a_if = W.Text(placeholder="eth0 (auto)", description="interface", layout=lay(width="200px"))
        self.link_b_if = W.Text(placeholder="eth0 (auto)", description="interface", layout=lay(width="200px"))
        self.link_a_br = W.Dropdown(description="bridge", layout=lay(width="200px"))
        self.link_b_br = W.Dropdown(description="bridge", layout=lay(width="200px"))
        self.link_a.observe(lambda _: self._fill_bridges(), names="value")
        self.link_b.observe(lambda _: self._fill_bridges(), names="value")
        self.add_link_button = W.Button(description="Add link", icon="plus", button_style="info")
        self.add_link_button.on_click(lambda _: self._form(self._add_link_from_form))
        link_form = W.VBox([W.HBox([W.VBox([self.link_a, self.link_a_if, self.link_a_br]),
                                    W.VBox([self.link_b, self.link_b_if, self.link_b_br])]),
                            W.HTML("<small>A veth pair (a cable). Leave the names empty for eth0, eth1...;"
                                   " pick a bridge to plug that end into it.</small>"),
                            self.add_link_button])

        self.bridge_node = W.Dropdown(description="Node", layout=lay(width="200px"))
        self.bridge_name = W.Text(placeholder="e.g. docker0", description="Bridge", layout=lay(width="200px"))
        self.bridge_addr = W.Text(placeholder="optional, e.g. 172.17.0.1/16", description="Address",
                                  layout=lay(width="300px"))
        self.add_bridge_button = W.Button(description="Add bridge", icon="plus", button_style="info")
        self.add_bridge_button.on_click(lambda _: self._form(self._add_bridge_from_form))
        bridge_form = W.VBox([W.HBox([self.bridge_node, self.bridge_name]), self.bridge_addr,
                              self.add_bridge_button])

        self.addr_node = W.Dropdown(description="Node", layout=lay(width="200px"))
        self.addr_if = W.Dropdown(description="Interface", layout=lay(width="200px"))
        self.addr_cidr = W.Text(placeholder="e.g. 10.0.0.3/24", description="Address", layout=lay(width="200px"))
        self.addr_node.observe(lambda _: self._fill_interfaces(), names="value")
        self.add_addr_button = W.Button(description="Add address", icon="plus", button_style="info")
        self.add_addr_button.on_click(lambda _: self._form(self._add_address_from_form))
        addr_form = W.VBox([W.HBox([self.addr_node, self.addr_if]), self.addr_cidr, self.add_addr_button])

        self.route_node = W.Dropdown(description="Node", layout=lay(width="200px"))
        self.route_dst = W.Text(value="default", description="To", layout=lay(width="200px"))
        self.route_via = W.Text(placeholder="gateway, e.g. 10.0.0.1", description="via", layout=lay(width="200px"))
        self.add_route_button = W.Button(description="Add route", icon="plus", button_style="info")
        self.add_route_button.on_click(lambda _: self._form(self._add_route_from_form))
        route_form = W.VBox([W.HBox([self.route_node, self.route_dst]), self.route_via, self.add_route_button])

        self.forms = W.Tab(children=[node_form, link_form, bridge_form, addr_form, route_form])
        self.forms.titles = ("Node", "Link", "Bridge", "Address", "Route")
        self.forms.add_class(NO_SNAPSHOT)  # input forms mean nothing in a saved notebook's static copy

        # plan and code
        self.python_view = W.HTML()
        self.ip_view = W.HTML()
        self.views = W.Tab(children=[self.python_view, self.ip_view])
        self.views.titles = ("Python", "ip commands")

        # actions and status
        self.build_button = W.Button(description="Build", icon="play", button_style="success",
                                     tooltip="create the lab and build every step of the plan")
        self.teardown_button = W.Button(description="Tear down", icon="stop", button_style="danger",
                                        tooltip="close the lab: every namespace, cable and process goes")
        self.build_button.on_click(lambda _: self._click(self._do_build))
        self.teardown_button.on_click(lambda _: self._click(self._do_teardown))
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=lay(width="180px", visibility="hidden"))
        self.status = W.HTML()
        self.status.add_class("labkit-builder-status")
        self.widget = W.VBox([
            W.HTML("<b>Topology builder</b>"),
            W.HBox([self.template, self.name]),
            self.forms,
            self.views,
            W.HBox([self.build_button, self.teardown_button, self.progress],
                   layout=lay(align_items="center")),
            self.status,
        ], layout=lay(border="1px solid #ddd", padding="6px", width="100%"))
        self.widget.add_class("labkit-builder")

    def add_view(self, title: str, widget: W.Widget, *, first: bool = True) -> None:
        """Show another widget (a diagram, say) as a tab beside the Python and ip views."""
        children, titles = list(self.views.children), list(self.views.titles)
        at = 0 if first else len(children)
        children.insert(at, widget)
        titles.insert(at, title)
        self.views.children = tuple(children)
        self.views.titles = tuple(titles)
        self.views.selected_index = at

    # -- state ------------------------------------------------------------------------

    @property
    def lab(self) -> Lab | None:
        """The lab built by this builder, or ``None`` (not built, or torn down)."""
        lab = self._lab
        return lab if lab is not None and not lab.closed else None

    @property
    def busy(self) -> bool:
        return self._tasks.busy

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Wait until the running operation (after a click) is done."""
        return self._tasks.wait(timeout)

    def code(self) -> str:
        """The labkit code that builds what this builder built (or plans to)."""
        return self.plan.python()

    def ip_commands(self) -> str:
        """The same as iproute2 commands."""
        return self.plan.ip_commands()

    def _set_status(self, kind: str, text: str, *, detail: str = "") -> None:
        self.status_text = text
        self.status.value = message(kind, text, detail=detail)

    def _failed(self, exc: BaseException, doing: str = "") -> None:
        self.error = exc
        step = getattr(exc, "step", None)
        if not doing:
            doing = f"step \u201c{step.title()}\u201d" if isinstance(step, Step) else "the operation"
        what = exc.message if isinstance(exc, LabkitError) else str(exc)
        self.status_text = f"{doing} failed: {what}"
        self.status.value = error_message(exc, doing=doing)
        self.progress.layout.visibility = "hidden"
        self._update_buttons()

    def _update_buttons(self) -> None:
        built = self.lab is not None
        busy = self._tasks.busy
        self.build_button.disabled = busy or built or not self.plan.steps
        self.teardown_button.disabled = busy or self._lab is None
        self.template.disabled = busy or built
        self.name.disabled = busy or built

    def _refresh_plan_views(self) -> None:
        self.python_view.value = code_block(self.plan.python(), height="220px")
        self.ip_view.value = code_block(self.plan.ip_commands() or "# nothing planned yet", height="220px")
        names = list(self.plan.nodes)
        for dd in (self.link_a, self.link_b, self.bridge_node, self.addr_node, self.route_node):
            keep = dd.value
            dd.options = names
            dd.value = keep if keep in names else (names[0] if names else None)
        if len(names) > 1 and self.link_a.value == self.link_b.value:
            self.link_b.value = names[1]
        self._fill_bridges()
        self._fill_interfaces()

    def _fill_bridges(self) -> None:
        for node_dd, br_dd in ((self.link_a, self.link_a_br), (self.link_b, self.link_b_br)):
            node = self.plan.nodes.get(node_dd.value or "")
            bridges = [b for b in (node.bridges if node else []) if not (node and node.kind == "switch")]
            options: list[Any] = [("(none)", None)] + [(b, b) for b in bridges]
            keep = br_dd.value
            br_dd.options = options
            br_dd.value = keep if keep in bridges else None

    def _fill_interfaces(self) -> None:
        node = self.plan.nodes.get(self.addr_node.value or "")
        names = [i for i in (node.ifnames if node else []) if i != "lo"]
        keep = self.addr_if.value
        self.addr_if.options = names
        self.addr_if.value = keep if keep in names else (names[-1] if names else None)

    def _changed(self) -> None:
        """After any change to the plan or the lab: views, buttons, attached panels."""
        self._refresh_plan_views()
        self._update_buttons()
        self.watcher.changed()

    # -- templates and forms ---------------------------------------------------------

    def use_template(self, template: str, *, name: str | None = None) -> None:
        """Replace the plan with a curriculum template (before building)."""
        if self.lab is not None:
            self._set_status("error", "Tear the lab down before choosing another template.")
            return
        try:
            short, func = _templates.by_name(template) if template != EMPTY else ("mylab", None)
            plan = Plan(name or short)
            if func is not None:
                func(plan)
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            self._failed(exc, doing="choosing the template")
            return
        self.plan.replace(plan)
        label = next((k for k, (s, f) in _templates.TEMPLATES.items() if f is func), EMPTY)
        self._quiet = True
        try:
            self.template.value = label
            self.name.value = plan.name
        finally:
            self._quiet = False
        self.error = None
        self._changed()
        if func is None:
            self._set_status("idle", "Empty plan. Add nodes and links with the forms, then click Build.")
        else:
            doc = (func.__doc__ or "").strip().splitlines()[0]
            self._set_status("info", f"Template \u201c{label}\u201d: {doc} {len(plan.steps)} steps planned; "
                                     "click Build to create it.")

    _quiet = False

    def _on_template(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self.use_template(change["new"])

    def _on_name(self, change: dict[str, Any]) -> None:
        if self._quiet or self.lab is not None:
            return
        try:
            self.plan.rename(change["new"])
        except LabkitError as exc:
            self._failed(exc, doing="naming the lab")
            return
        self._refresh_plan_views()

    def _form(self, action: Callable[[], object]) -> None:
        """A form's Add button: record the step in the plan; apply it if the lab is up."""
        if self._tasks.busy:
            self._set_status("busy", "Still working on the previous operation; try again in a moment.")
            return
        before = list(self.plan.steps)
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            self.plan.reset_to(before)
            self._failed(exc, doing=f"adding that {self.forms.titles[self.forms.selected_index or 0].lower()}")
            return
        self.error = None
        new = self.plan.steps[len(before):]
        if self.lab is None:
            self._changed()
            self._set_status("info", f"Planned: {'; '.join(s.title() for s in new)}. "
                                     f"{len(self.plan.steps)} steps; click Build to create the lab.")
            return
        self._click(lambda: self._apply_live(before, new))

    def _apply_live(self, before: list[Step], new: list[Step]) -> None:
        lab = self.lab
        assert lab is not None
        try:
            for step in new:
                self._set_status("busy", f"Applying to the running lab: {step.title()} ...")
                step.apply(lab)
        except Exception as exc:
            self.plan.reset_to(before)
            self._changed()
            exc.step = step  # type: ignore[attr-defined]
            raise
        self._changed()
        self._set_status("ok", f"Done: {'; '.join(s.title() for s in new)}. The lab now has "
                               f"{plural(len(lab.nodes), 'node')} and {plural(len(lab.links), 'link')}.")

    def _add_node_from_form(self) -> None:
        self.add_node(self.node_name.value.strip(), self.node_kind.value, _from_form=True)
        self.node_name.value = ""  # ready for the next one

    def _add_link_from_form(self) -> None:
        names = (self.link_a_if.value.strip() or None, self.link_b_if.value.strip() or None)
        self.add_link(self.link_a.value, self.link_b.value, names=names,
                      bridges=(self.link_a_br.value, self.link_b_br.value), _from_form=True)

    def _add_bridge_from_form(self) -> None:
        self.add_bridge(self.bridge_node.value, self.bridge_name.value.strip(),
                        address=self.bridge_addr.value.strip() or None, _from_form=True)

    def _add_address_from_form(self) -> None:
        self.add_address(self.addr_node.value, self.addr_if.value, self.addr_cidr.value.strip(), _from_form=True)
        self.addr_cidr.value = ""

    def _add_route_from_form(self) -> None:
        self.add_route(self.route_node.value, self.route_dst.value.strip() or "default",
                       via=self.route_via.value.strip() or None, _from_form=True)

    # The same operations from code (each one is one step of the plan).

    def _code_step(self, record: Callable[[], object], _from_form: bool) -> None:
        if _from_form:
            record()
        else:
            self._form(record)
            if self.error is None:
                self.wait()

    def _need(self, node: str | None, what: str) -> str:
        if not node:
            from ..errors import InvalidTopology

            raise InvalidTopology(f"no node chosen for the {what}", op=f"add {what}",
                                  remedy="add a node first (Node tab), then pick it")
        return node

    def add_node(self, name: str, kind: str = "host", *, _from_form: bool = False) -> None:
        """Plan (or, once built, add) a host, router or switch."""
        self._code_step(lambda: self.plan.add_node(name, kind), _from_form)

    def add_link(self, a: str, b: str, *, names: tuple[str | None, str | None] = (None, None),
                 bridges: tuple[str | None, str | None] = (None, None), _from_form: bool = False) -> None:
        """Plan (or add) a veth pair between two nodes."""
        self._code_step(lambda: self.plan.link(self._need(a, "link"), self._need(b, "link"),
                                               names=names, bridges=bridges), _from_form)

    def add_bridge(self, node: str, name: str, *, address: str | None = None, _from_form: bool = False) -> None:
        """Plan (or add) a bridge inside a node."""
        self._code_step(lambda: self.plan.node(self._need(node, "bridge")).add_bridge(name, address=address),
                        _from_form)

    def add_address(self, node: str, ifname: str, cidr: str, *, _from_form: bool = False) -> None:
        """Plan (or add) an address on an interface."""
        def record() -> None:
            if not ifname:
                from ..errors import InvalidTopology

                raise InvalidTopology(f"node {node!r} has no interface to put an address on yet",
                                      obj=node, op="add address", remedy="link it to another node first")
            self.plan.node(self._need(node, "address")).add_address(ifname, cidr)
        self._code_step(record, _from_form)

    def add_route(self, node: str, dst: str = "default", *, via: str | None = None,
                  dev: str | None = None, _from_form: bool = False) -> None:
        """Plan (or add) a route."""
        self._code_step(lambda: self.plan.node(self._need(node, "route")).add_route(dst, via=via, dev=dev),
                        _from_form)

    # -- build and tear down -------------------------------------------------------------

    def _click(self, work: Callable[[], None]) -> None:
        if not self._tasks.run(work, background=True):
            self._set_status("busy", "Still working on the previous operation; please wait.")
        else:
            self._update_buttons()

    def build(self, *, wait: bool = True) -> "TopologyBuilder":
        """Create the lab and build the plan (the Build button). ``wait=False``: in the background."""
        if not self._tasks.run(self._do_build, background=not wait):
            self._set_status("busy", "Still working on the previous operation; please wait.")
        self._update_buttons()
        return self

    def teardown(self, *, wait: bool = True) -> "TopologyBuilder":
        """Close the lab (the Tear down button); the plan stays, so Build makes it again."""
        if not self._tasks.run(self._do_teardown, background=not wait):
            self.wait()
            self._do_teardown()
        self._update_buttons()
        return self

    def _do_build(self) -> None:
        if self.lab is not None:
            self._set_status("info", "The lab is already built; tear it down first to build again.")
            return
        if not self.plan.steps:
            self._set_status("error", "Nothing to build yet: pick a template or add nodes with the forms.")
            return
        self.error = None
        steps = self.plan.steps
        self.progress.max = len(steps) + 1
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.progress.layout.visibility = "visible"
        self._update_buttons()
        started = time.monotonic()
        self._set_status("busy", f"Creating lab \u201c{self.plan.name}\u201d (its private namespaces) ...")
        kwargs: dict[str, Any] = {"mode": self.mode}
        if self.workdir is not None:
            kwargs["workdir"] = self.workdir
        try:
            self._lab = Lab(self.plan.name, **kwargs)
        except Exception as exc:
            self._failed(exc, doing="creating the lab")
            return
        self.watcher.changed()

        def progress(i: int, step: Step) -> None:
            self.progress.value = i + 1
            self._set_status("busy", f"Building step {i + 1} of {len(steps)}: {step.title()}")

        try:
            self.plan.apply(self._lab, progress)
        except Exception as exc:
            self.progress.bar_style = "danger"
            self.watcher.changed()
            self._failed(exc)
            self.status.value += message("info", "The steps before it are built; fix the plan and "
                                                 "tear down, or keep working on the lab as it is.")
            return
        lab = self._lab
        self.progress.value = self.progress.max
        self.progress.bar_style = "success"
        self._update_buttons()
        self.watcher.changed()
        elapsed = time.monotonic() - started
        notes = f" ({'; '.join(lab.notes)})" if lab.notes else ""
        self._set_status("ok", f"Lab \u201c{lab.name}\u201d is up ({lab.mode} mode){notes}: "
                               f"{plural(len(lab.nodes), 'node')}, {plural(len(lab.links), 'link')}, "
                               f"built in {elapsed:.1f} s. "
                               "Ping between its nodes; in code, the lab is this builder's .lab.")

    def _do_teardown(self) -> None:
        lab, self._lab = self._lab, None
        if lab is None:
            self._set_status("idle", "No lab to tear down.")
            return
        self._set_status("busy", f"Tearing down lab \u201c{lab.name}\u201d ...")
        lab.close()
        self.progress.layout.visibility = "hidden"
        self._update_buttons()
        self.watcher.changed()
        self._set_status("idle", f"Lab \u201c{lab.name}\u201d is torn down: every namespace, cable and "
                                 "process it had is gone. The plan is kept; click Build to make it again.")

    def close(self) -> None:
        """Tear the lab down and close the widget (and its watcher). Safe to call twice."""
        self._freeze()
        self._tasks.wait(30)
        lab, self._lab = self._lab, None
        if lab is not None:
            lab.close()
        self.watcher.stop()
        self.watcher.changed()
        self._close_widgets()

    def __repr__(self) -> str:
        state = f"built: {self.lab!r}" if self.lab is not None else f"plan of {len(self.plan.steps)} steps"
        return f"<TopologyBuilder {self.plan.name}: {state}>"


def builder(template: str | None = None, **kwargs: Any) -> TopologyBuilder:
    """A topology builder widget; display it (last line of a cell) and click Build."""
    return TopologyBuilder(template, **kwargs)
