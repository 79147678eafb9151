# JupyterHub for a class: the course served from one machine to many students.
#
#   sudo deploy/jupyterhub/install-proxy.sh        # configurable-http-proxy (npm)
#   sudo .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py
#
# Each student logs in as their own unprivileged Unix account (PAM by default; members
# of the group LABKIT_HUB_GROUP, "students" unless set). Their server starts as that
# user (LocalProcessSpawner: the hub runs as root only to switch users), with the
# course's notebooks copied into ~/course on the first start. The server runs as the
# init of a PID namespace of its own (labkit.singleuser), so stopping or culling it
# ends every kernel, and with each kernel every lab: labs are rootless bubbles
# (unprivileged user namespaces), so two students' identically named labs never meet.
#
# The idle culler (jupyterhub-idle-culler, a hub-managed service) stops servers idle
# for LABKIT_HUB_CULL_TIMEOUT seconds (default one hour), checking every
# LABKIT_HUB_CULL_EVERY seconds.
#
# Settings read from the environment (all optional):
#   LABKIT_COURSE_DIR      the repository checkout to serve (default: this file's repo)
#   LABKIT_VENV            its Python environment (default: $LABKIT_COURSE_DIR/.venv)
#   LABKIT_HUB_STATE       hub database and cookie secret (default: /srv/labkit-hub)
#   LABKIT_HUB_BIND_URL    where students connect (default: http://:8000)
#   LABKIT_HUB_GROUP       Unix group whose members may log in (default: students)
#   LABKIT_HUB_ADMINS      comma-separated admin users (default: none)
#   LABKIT_HUB_CULL_TIMEOUT, LABKIT_HUB_CULL_EVERY   idle culling, in seconds
#   LABKIT_HUB_ACTIVITY_INTERVAL   how often servers report activity (default: 300 s)
# The configuration is plain Python: a course can `load_subconfig()` this file from
# its own and override anything (the test does, to use a test authenticator).

import os
import shutil
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

COURSE = Path(os.environ.get("LABKIT_COURSE_DIR", Path(__file__).resolve().parents[2]))
VENV = Path(os.environ.get("LABKIT_VENV", COURSE / ".venv"))
STATE = Path(os.environ.get("LABKIT_HUB_STATE", "/srv/labkit-hub"))
STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
COURSE_FOLDERS = ("notebooks", "exercises")
"""What each student gets a copy of, in ~/course (their own, editable)."""

# --- the hub -------------------------------------------------------------------------
c.JupyterHub.bind_url = os.environ.get("LABKIT_HUB_BIND_URL", "http://:8000")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # a hub shut down stops every student's server
c.JupyterHub.last_activity_interval = int(os.environ.get("LABKIT_HUB_ACTIVITY_INTERVAL", "300"))

# --- who may log in --------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {os.environ.get("LABKIT_HUB_GROUP", "students")}
c.Authenticator.admin_users = {u for u in os.environ.get("LABKIT_HUB_ADMINS", "").split(",") if u}

# --- each student's server ---------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV / "bin" / "python"), "-m", "labkit.singleuser", "--",
                 str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab/tree/course"
c.Spawner.notebook_dir = "~"
c.Spawner.http_timeout = 120  # many students logging in at the start of a class
c.Spawner.start_timeout = 120
c.Spawner.environment = {
    # JupyterHub passes almost nothing of its own environment on: the tools the labs
    # run (ip, nft, tcpdump, ...) live in the sbin folders.
    "PATH": f"{VENV / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "JUPYTERHUB_ACTIVITY_INTERVAL": os.environ.get("LABKIT_HUB_ACTIVITY_INTERVAL", "300"),
}
# The launcher passes SIGINT on to the server, which shuts its kernels (and labs) down.
c.LocalProcessSpawner.interrupt_timeout = 20
c.LocalProcessSpawner.term_timeout = 10


def copy_course(spawner):
    """First start of a student's server: give them their own copy of the course."""
    import pwd

    user = pwd.getpwnam(spawner.user.name)
    target = Path(user.pw_dir) / "course"
    for folder in COURSE_FOLDERS:
        source, dest = COURSE / folder, target / folder
        if source.is_dir() and not dest.exists():
            shutil.copytree(source, dest)
    if target.exists():
        for path in [target, *target.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


c.Spawner.pre_spawn_hook = copy_course

# --- idle culling --------------------------------------------------------------------------
CULL_TIMEOUT = int(os.environ.get("LABKIT_HUB_CULL_TIMEOUT", "3600"))
CULL_EVERY = int(os.environ.get("LABKIT_HUB_CULL_EVERY", "300"))
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [str(VENV / "bin" / "python"), "-m", "jupyterhub_idle_culler",
                f"--timeout={CULL_TIMEOUT}", f"--cull-every={CULL_EVERY}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
