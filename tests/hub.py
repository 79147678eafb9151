"""A real JupyterHub for tests and benchmarks: deploy/jupyterhub's configuration with
a test authenticator, on loopback, serving throwaway unprivileged student accounts.

``ClassHub`` creates the accounts (homes in a fresh folder under /tmp), writes a small
configuration that loads ``deploy/jupyterhub/jupyterhub_config.py`` unchanged and then
swaps PAM for JupyterHub's DummyAuthenticator, picks free ports, starts the hub and
its proxy, and on ``close()`` stops everything and removes the accounts. Needs root
(accounts, and LocalProcessSpawner switching users) and configurable-http-proxy
(``deploy/jupyterhub/install-proxy.sh``).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "deploy" / "jupyterhub" / "jupyterhub_config.py"
CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium")
                 if p and os.path.exists(p)), None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_of(uid: int) -> list[int]:
    """PIDs of live processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            found.append(int(entry))
    return found


class ClassHub:
    """JupyterHub from deploy/jupyterhub with ``users`` as student accounts."""

    def __init__(self, workdir: Path, users: list[str], *, cull_timeout: int = 3600,
                 cull_every: int = 300, activity_interval: int = 5) -> None:
        self.workdir = workdir
        self.users = users
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "jupyterhub.log"
        self.homes = Path(tempfile.mkdtemp(prefix="labkit-hub-homes-", dir="/tmp"))
        self.homes.chmod(0o755)
        self.proc: subprocess.Popen[bytes] | None = None
        self._settings = {"LABKIT_HUB_CULL_TIMEOUT": str(cull_timeout),
                          "LABKIT_HUB_CULL_EVERY": str(cull_every),
                          "LABKIT_HUB_ACTIVITY_INTERVAL": str(activity_interval)}

    # --- accounts ------------------------------------------------------------------------
    def _make_users(self) -> None:
        for user in self.users:
            if _exists(user):
                subprocess.run(["userdel", "--remove", user], capture_output=True, check=False)
            subprocess.run(["useradd", "--create-home", "--home-dir", str(self.homes / user),
                            "--shell", "/usr/sbin/nologin", "--user-group", user],
                           check=True, capture_output=True)

    def uid(self, user: str) -> int:
        return pwd.getpwnam(user).pw_uid

    def give(self, user: str, name: str, content: str) -> Path:
        """Put a file into a student's home, owned by them."""
        entry = pwd.getpwnam(user)
        path = Path(entry.pw_dir) / name
        path.write_text(content, encoding="utf-8")
        os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    # --- the hub -------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> None:
        self._make_users()
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(
            f"load_subconfig({str(CONFIG)!r})\n"
            "c = get_config()\n"
            "c.JupyterHub.authenticator_class = 'dummy'\n"
            f"c.Authenticator.allowed_users = set({self.users!r})\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{free_port()}'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n"
            # the labkit under test (a worktree) rather than the one installed in the venv
            f"c.Spawner.environment['PYTHONPATH'] = {str(REPO)!r}\n"
            # the browser drives JupyterLab through window.jupyterapp
            "c.Spawner.args = ['--LabApp.expose_app_in_browser=True', '--LabApp.news_url=']\n"
            "c.JupyterHub.services.append({'name': 'test-admin', "
            f"'api_token': {self.token!r}}})\n"
            "c.JupyterHub.load_roles.append({'name': 'test-admin', 'services': ['test-admin'], "
            "'scopes': ['admin:users', 'admin:servers', 'list:users', 'read:users']})\n")
        env = {**os.environ, **self._settings, "LABKIT_COURSE_DIR": str(REPO),
               "LABKIT_VENV": sys.prefix, "LABKIT_HUB_STATE": str(self.workdir / "state"),
               "LABKIT_HUB_BIND_URL": self.base, "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)],
                                     cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.api("GET", "/hub/api/")
                return
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError(f"jupyterhub did not answer in {timeout} s:\n{self.log()}")
                time.sleep(0.3)

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            text = resp.read()
        return json.loads(text) if text else None

    def server(self, user: str) -> dict[str, Any] | None:
        """The user's default server as the hub's REST API reports it (None: stopped)."""
        return self.api("GET", f"/hub/api/users/{user}").get("servers", {}).get("")

    def stop_server(self, user: str) -> None:
        try:
            self.api("DELETE", f"/hub/api/users/{user}/server")
        except urllib.error.HTTPError as exc:
            if exc.code != 400:  # 400: not running
                raise

    def close(self) -> None:
        """Stop the hub (it stops every server and its proxy), then remove the accounts."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for user in self.users:
            if _exists(user):
                for pid in processes_of(self.uid(user)):  # only if the hub failed to
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                subprocess.run(["userdel", "--remove", user], capture_output=True, check=False)
        shutil.rmtree(self.homes, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _network_changed(exc: Exception) -> bool:
    # Chromium aborts a navigation when the host's interfaces change (other work on
    # the machine adding Docker veths, say): not the hub's doing, so try again.
    return "ERR_NETWORK_CHANGED" in str(exc)


def goto(page: Any, url: str, timeout_ms: int = 120_000, tries: int = 4) -> None:
    """``page.goto`` that tries again when Chromium saw the host's network change."""
    for attempt in range(tries):
        try:
            page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
            return
        except Exception as exc:  # noqa: BLE001 - playwright's Error, re-raised below
            if not _network_changed(exc) or attempt == tries - 1:
                raise
            time.sleep(1)


def login(page: Any, base: str, user: str, timeout_ms: int = 120_000, tries: int = 4) -> None:
    """Log ``user`` in through the hub's login form; return once their server is up."""
    for attempt in range(tries):
        try:
            goto(page, f"{base}/hub/login", timeout_ms)
            if "/hub/login" in page.url:  # not logged in yet (else the hub redirects)
                page.fill("#username_input", user)
                page.fill("#password_input", "any password: the test authenticator checks none")
                page.click("#login_submit")
            page.wait_for_url(f"{base}/user/{user}/lab**", timeout=timeout_ms)
            return
        except Exception as exc:  # noqa: BLE001 - playwright's Error, re-raised below
            if not _network_changed(exc) or attempt == tries - 1:
                raise


def open_notebook(page: Any, base: str, user: str, name: str, timeout_ms: int = 120_000) -> None:
    """Open a notebook of the user's home in JupyterLab and wait for its kernel."""
    goto(page, f"{base}/user/{user}/lab/tree/{name}", timeout_ms)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout_ms)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel", timeout=timeout_ms)


def run_all(page: Any) -> None:
    """Start running every cell (returns at once: several notebooks can run together)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
