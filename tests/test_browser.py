"""A real browser: JupyterLab in headless Chromium runs the widgets and builds a lab.

Starts a JupyterLab server on loopback (random free port, a token, its own config,
runtime and settings folders), opens ``tests/data/browser/widgets.ipynb`` in Debian's
Chromium driven by Playwright, runs the notebook, checks that the workbench renders,
clicks **Build** and then **Ping** and waits for a successful ping in the widget.
Screenshots go to ``artifacts/browser/`` at the repository root (git-ignored).

The server, its kernels (and so the lab) and the browser are ended however the test
ends. Skipped only where Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from helpers import descendants

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "tests" / "data" / "browser" / "widgets.ipynb"
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.path.exists(p)), None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return resp.read()


def _stop_tree(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the server (it shuts its kernels down), then SIGKILL whatever is left."""
    tree = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    for pid in [proc.pid, *tree]:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.wait(5)


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A JupyterLab server on 127.0.0.1 serving a copy of the smoke-test notebook."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # no "would you like news?" toast over the widgets
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=", "--ServerApp.log_level=WARN"]
    log = (tmp_path / "jupyter.log").open("wb")
    server = subprocess.Popen(argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n"
                            + (tmp_path / "jupyter.log").read_text()[-3000:])
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if time.monotonic() > end:
                    pytest.fail("jupyter lab did not answer within 90 s:\n"
                                + (tmp_path / "jupyter.log").read_text()[-3000:])
                time.sleep(0.3)
        yield base, token, tmp_path
    finally:
        try:  # shut the kernels down first: each one closes its lab
            for kernel in json.loads(_get(f"{base}/api/kernels?token={token}")):
                req = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}",
                                             method="DELETE")
                urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - loopback only
        except OSError:
            pass
        _stop_tree(server)
        log.close()


def test_widgets_build_and_ping_in_jupyterlab(jupyter: tuple[str, str, Path]) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:  # a dev dependency: failing says what is missing, a skip would hide it
        pytest.fail("the Python package `playwright` is missing: pip install -e '.[dev]'")
    base, token, tmp_path = jupyter
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    shots: list[Path] = []

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1440, "height": 1400})
        try:
            page = context.new_page()

            def shot(name: str, **kwargs: object) -> None:
                path = ARTIFACTS / name
                page.screenshot(path=str(path), **kwargs)
                shots.append(path)

            try:
                page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", wait_until="domcontentloaded",
                          timeout=60_000)
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                       " && window.jupyterapp.shell.currentWidget.sessionContext"
                                       " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                       " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                       timeout=60_000)
                page.evaluate("() => window.jupyterapp.shell.collapseLeft()")   # room for the widgets
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

                # the workbench renders: builder, diagram (a plotly plot of the plan), ping panel
                builder = page.locator(".labkit-builder")
                expect(builder).to_be_visible(timeout=90_000)
                build = builder.get_by_role("button", name="Build")
                expect(build).to_be_enabled(timeout=30_000)
                expect(builder.locator(".labkit-builder-status")).to_contain_text("10 steps planned")
                expect(builder.locator(".labkit-code").first).to_contain_text('lab.add_router("host")')
                expect(page.locator(".labkit-diagram .js-plotly-plot")).to_be_visible(timeout=30_000)
                ping_panel = page.locator(".labkit-ping")
                expect(ping_panel).to_be_visible()
                builder.scroll_into_view_if_needed()
                shot("01-rendered.png")

                # Build: the lab is created in the kernel, the status says so, pickers fill
                build.click()
                expect(builder.locator(".labkit-builder-status")).to_contain_text("is up", timeout=60_000)
                expect(page.locator(".labkit-diagram")).to_contain_text("built: 3 nodes, 2 links",
                                                                         timeout=30_000)
                ping_button = ping_panel.get_by_role("button", name="Ping")
                expect(ping_button).to_be_enabled(timeout=30_000)
                expect(ping_panel.locator(".labkit-ping-status")).to_contain_text("then click Ping")
                selects = ping_panel.locator("select")
                expect(selects.nth(0)).to_have_value(re.compile(r"^c1\b"))          # label "c1 (host)"
                expect(selects.nth(1)).to_have_value(re.compile(r"^172\.17\.0\.3\b"))  # "... (c2 eth0)"
                shot("02-built.png")

                # Ping: a successful result appears as text, a table and an RTT plot
                ping_button.click()
                result = ping_panel.locator(".labkit-ping-status .labkit-ok")
                expect(result).to_contain_text("3/3 replies from 172.17.0.3", timeout=60_000)
                expect(ping_panel.locator("table")).to_contain_text("rtt_ms", timeout=30_000)
                expect(ping_panel.locator(".js-plotly-plot")).to_be_visible(timeout=30_000)
                ping_panel.scroll_into_view_if_needed()
                shot("03-ping.png")
                page.locator(".labkit-workbench").screenshot(path=str(ARTIFACTS / "04-workbench.png"))
                shots.append(ARTIFACTS / "04-workbench.png")
            except Exception:
                shot("failure.png")
                raise
        finally:
            context.close()
    print("screenshots:", *[str(p) for p in shots], sep="\n  ")
