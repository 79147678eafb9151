# ---
# jupyter:
#   labkit:
#     requires:
#     - docker
# ---

# %% [markdown]
# # Exercise 20 · The db/web task of the UPC thesis
#
# In section 4.2 of the UPC thesis a database container `db` and a web server `web`
# end up on different Docker networks, cannot reach each other, and are joined with
# `docker network connect`. You do the same with the real engine, then go a little
# further: predict what Docker will assign, use a legacy link, and break the
# connection again.
#
# ```
#    docker0 (default bridge)                    bridge_test (your subnet)
#      |            |                              |             |
#     web        legacy --link web:webserver       db          web (after task 4)
# ```
#
# Work with `dl` (a `DockerLab`: `dl.network`, `dl.run`, `dl.connect`,
# `dl.disconnect`, and on a container `.ping`, `.run`, `.ip`, `.mac`) or with docker-py
# directly through `client`; notebook 20 shows both. Keep the names `db`, `web` and
# `legacy` (and the variables each task asks for): the checkpoints look for them.
# Replace the `...` in every cell marked `# YOUR CODE HERE`, then run the checkpoint
# cell after it. A checkpoint shows PASS or FAIL with its reason; you may run it as
# often as you like.
#
# The parameters cell holds your network's name and subnet (your instructor may give
# you others). Run the cells in order.

# %% tags=["parameters"]
student_id = "anonymous"
docker_host = None           # None: this machine's engine; your instructor may set another
network_name = "bridge_test"
subnet = "172.18.0.0/16"

# %%
from labkit.checkpoints import Checkpoint, checks
from labkit.docker import WEB_PAGE, DockerLab, check, connect

engine = check(docker_host)      # docker version
display(engine)
engine.raise_if_unreachable()    # without an engine, stop here: ask for a machine that has one
client = connect(docker_host)
dl = DockerLab("20-docker-networks-exercise", client)   # removes leftovers of an earlier run
print(f"ready: your network is {network_name} with subnet {subnet}")

# %% [markdown]
# ## Task 1 · A user-defined bridge (1 point)
#
# Create the bridge network `network_name` with the subnet `subnet`
# (`docker network create -d bridge --subnet SUBNET NAME`).

# %%
# BEGIN SOLUTION
net = dl.network(network_name, subnet=subnet)   # docker network create -d bridge --subnet ... bridge_test
net.name
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.1", "A user-defined bridge network with your subnet", points=1,
                hint="dl.network(network_name, subnet=subnet)") as cp:
    cp.check(checks.docker_network(network_name, subnet=subnet, client=client))
    driver = client.networks.get(network_name).attrs["Driver"]
    cp.check(checks.expect(driver == "bridge", f"{network_name} uses the {driver} driver"))

# %% [markdown]
# ## Task 2 · Two containers, two networks (2 points)
#
# Start `db` on your network (its command can stay the default, a long `sleep`), and
# `web` on the default bridge, serving the course's page with busybox's web server:
# command `httpd -f -p 80 -h /var/www`.

# %%
# BEGIN SOLUTION
db = dl.run("db", network=network_name)             # docker run -d --net=bridge_test --name db labkit/busybox:1
web = dl.run("web", "httpd -f -p 80 -h /var/www")   # docker run -d --name web labkit/busybox:1 httpd ...
db.ip(network_name), web.ip("bridge")
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.2", "db on your network, web on the default bridge, and no way between them",
                points=2, hint="start db with network=network_name and web without a network") as cp:
    cp.check(checks.container("db", network=network_name, client=client))
    cp.check(checks.container("web", network="bridge", client=client))
    web_ip = client.containers.get("web").attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    cp.check(checks.ping(dl.container("db"), web_ip, expect="failure"))

# %% [markdown]
# ## Task 3 · Predict what Docker assigned (2 points)
#
# Without asking Docker, from `subnet` alone: which IPv4 address did `db` get, and
# which MAC address? Put them in `db_ip` and `db_mac` as strings
# (`"a.b.c.d"`, `"xx:xx:xx:xx:xx:xx"`, lower case). Notebook 20, section 4, shows how
# Docker derives one from the other.

# %%
# BEGIN SOLUTION
import ipaddress

usable = ipaddress.ip_network(subnet).hosts()
gateway = next(usable)          # the bridge takes the first address
db_ip = str(next(usable))       # the first container the second
db_mac = "02:42:" + ":".join(f"{int(byte):02x}" for byte in db_ip.split("."))
db_ip, db_mac
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.3", "db's address and MAC, predicted", points=2,
                hint="the gateway takes the first usable address; the MAC is 02:42 and the address in hex") as cp:
    endpoint = client.containers.get("db").attrs["NetworkSettings"]["Networks"][network_name]
    cp.check(checks.expect(str(db_ip) == endpoint["IPAddress"], "db's address matches your prediction"))
    cp.check(checks.expect(str(db_mac).lower() == endpoint["MacAddress"], "db's MAC matches your prediction"))

# %% [markdown]
# ## Task 4 · Join them (2 points)
#
# Make `web` reachable from `db` **by name**, without stopping either container
# (`docker network connect`).

# %%
# BEGIN SOLUTION
dl.connect(network_name, web)        # docker network connect bridge_test web
db.ping("web")
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.4", "db reaches web by name", points=2,
                hint="connect web to your network; names resolve on user-defined networks") as cp:
    cp.check(checks.container("web", network=network_name, client=client))
    cp.check(checks.ping(dl.container("db"), "web", expect="success"))

# %% [markdown]
# ## Task 5 · The page (2 points)
#
# From inside `db`, fetch `http://web/` (busybox has `wget -q -O - URL`) and keep what
# it printed in `page`.

# %%
# BEGIN SOLUTION
page = db.run("wget -q -O - http://web/").stdout     # docker exec db wget -q -O - http://web/
page
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.5", "db fetched web's page by name", points=2,
                hint="db.run('wget -q -O - http://web/').stdout") as cp:
    cp.check(checks.command(dl.container("db"), ["wget", "-q", "-O", "-", "http://web/"],
                            stdout_contains=WEB_PAGE.strip()))
    cp.check(checks.expect(str(page) == WEB_PAGE, "page holds what web serves"))

# %% [markdown]
# ## Task 6 · The legacy way (2 points)
#
# Start a container `legacy` on the **default bridge only** that reaches `web` under the
# name `webserver`. The default bridge has no DNS: use a link (`--link NAME:ALIAS`).

# %%
# BEGIN SOLUTION
legacy = dl.run("legacy", links={"web": "webserver"})    # docker run -d --name legacy --link web:webserver ...
legacy.hosts_entries()["webserver"]
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.6", "legacy, on the default bridge only, reaches webserver", points=2,
                hint="dl.run('legacy', links={'web': 'webserver'})") as cp:
    nets = sorted(client.containers.get("legacy").attrs["NetworkSettings"]["Networks"])
    cp.check(checks.expect(nets == ["bridge"], f"legacy is on {nets}"))
    cp.check(checks.ping(dl.container("legacy"), "webserver", expect="success"))

# %% [markdown]
# ## Task 7 · Break it again (1 point)
#
# Take `web` off your network, so that `db` no longer reaches it, by name or by address.

# %%
# BEGIN SOLUTION
dl.disconnect(network_name, web)     # docker network disconnect bridge_test web
# END SOLUTION

# %% tags=["checkpoint"]
with Checkpoint("20.7", "db no longer reaches web", points=1,
                hint="docker network disconnect") as cp:
    web_nets = client.containers.get("web").attrs["NetworkSettings"]["Networks"]
    cp.check(checks.expect(network_name not in web_nets, f"web is on {sorted(web_nets)}"))
    cp.check(checks.ping(dl.container("db"), "web", expect="failure"))
    cp.check(checks.ping(dl.container("db"), web_nets["bridge"]["IPAddress"], expect="failure"))

# %% [markdown]
# ## To think about (not graded)
#
# * In task 2, `db`'s packets to `web` did leave `db`. Where were they dropped, and by what?
#   (Notebook 20, section 5.)
# * Why does Docker call links "legacy"? Name two things a user-defined network does
#   better.

# %% [markdown] tags=["solution-only"]
# ## Answers to the questions of walkthrough 20
#
# 1. **`02:42` and four bytes.** The container's IPv4 address, one byte each
#    (172.18.0.2 gives `02:42:ac:12:00:02`). `02` marks a locally administered MAC, which
#    no vendor hands out; the IP address is already unique on the network, so the MAC is
#    too, and a restarted container with the same address keeps the same MAC.
# 2. **Who answers `db`.** The engine's embedded DNS server, which every container on a
#    user-defined network reaches at 127.0.0.11 (`/etc/resolv.conf`). The default bridge
#    predates it and keeps the old behaviour for compatibility: no names, only `--link`,
#    which writes `/etc/hosts` lines.
# 3. **The client address behind `-p`.** A client on another machine: its own address
#    (DNAT rewrites only the destination, as in notebook 02). A client on the host that
#    uses 127.0.0.1: the packet does not cross `PREROUTING`; Docker's userland proxy
#    (`docker-proxy`) accepts the connection and opens a new one, so the server logs the
#    bridge's gateway address (172.17.0.1 on the default bridge).

# %% [markdown]
# ## Clean-up
#
# Remove your containers and network (everything this exercise labelled).

# %%
print(dl.close())
