# %% [markdown]
# # 00 · A tour of the widgets: build, ping and capture before writing code
#
# **Objectives.** By the end of this notebook you can
#
# 1. build a small container network from a template with one click, and tear it down;
# 2. ping between its nodes and read why a ping fails;
# 3. capture the packets of that ping and look at them as a table and a timeline;
# 4. find the Python (and `ip`) code that does the same, so the next notebooks can use code.
#
# Everything the widgets build is real: network namespaces, veth cables and a Linux
# bridge in the kernel, inside a private *lab* that disappears when it is torn down.
#
# **How to use this notebook.** Run each cell (Shift+Enter). Where a cell shows a
# widget, use its buttons. The cells below each widget do the same thing from code, so
# the notebook also works when run from top to bottom (and that is how its outputs were
# made).

# %% [markdown]
# ## 0 · Can this machine run labs?
#
# `labkit doctor` tries everything the course needs. If it says basic labs do not work,
# read on anyway: the widgets will tell you, in plain words, what failed and how to fix it.

# %%
from labkit import doctor

report = doctor.run()
print("lab mode:", report.mode, "| basic labs work:", report.ok)

# %% [markdown]
# ## 1 · The workbench
#
# One call shows everything: the **topology builder** (a template or forms, a live
# **diagram**, the code, Build and Tear down), and below it a **ping** panel and a
# **capture** panel.
#
# The template below is Docker's default network, built by hand in notebook 02:
#
# ```
#   c1 172.17.0.2 ─ eth0 ── veth1 ─┐
#                                  ├─ docker0 172.17.0.1/16   (host, forwarding on)
#   c2 172.17.0.3 ─ eth0 ── veth2 ─┘
# ```
#
# **Try it.** Look at the *Diagram* tab (the plan, not built yet), then the *Python* and
# *ip commands* tabs. Click **Build**. Then, in the *Ping* tab, ping `c2` from `c1`.

# %%
from labkit.widgets import workbench

wb = workbench("two containers on a bridge (docker0)")
wb

# %% [markdown]
# The same clicks from code. `build()` waits until the lab is up; the widget above
# shows its progress and result.

# %%
wb.build()
print(wb.builder.status_text)

# %% [markdown]
# **Predict.** `c1` and `c2` are on the same bridge and the same /16 subnet. How many
# routers are on the way? What TTL will the replies have (Linux starts at 64)?

# %%
result = wb.ping_panel.ping("c1", "172.17.0.3")    # the Ping button, with c1 -> 172.17.0.3
print(result)

# %% [markdown]
# No router: the bridge forwards frames, it does not route packets, so the TTL stays 64.

# %% [markdown]
# ## 2 · The code behind the clicks
#
# Everything the builder did is one labkit call per step. This is the code to copy into
# your own notebook (the *Python* tab shows the same):

# %%
print(wb.builder.code())

# %% [markdown]
# And the same steps as `ip` commands, for a Linux terminal (first lines):

# %%
print("\n".join(wb.builder.ip_commands().splitlines()[:12]))

# %% [markdown]
# The lab itself is an ordinary `labkit.Lab`: any cell can use it.

# %%
wb.lab["c1"].routes()                               # ip -n c1 route

# %% [markdown]
# ## 3 · Break it, and read the explanation
#
# **Predict.** Take `c2`'s cable down. What will `c1` see: an error message, or silence?
#
# With the widget: run the next cell, then click **Ping** again and read the red box.

# %%
wb.lab["c2"].set_down("eth0")                       # ip -n c2 link set eth0 down
failed = wb.ping_panel.ping("c1", "172.17.0.3", count=1)
print(failed)
print(*wb.ping_panel.explanation, sep="\n")

# %% [markdown]
# Silence: no reply, and ping printed no error (`c1` still knew `c2`'s MAC address, so
# it sent the request; the bridge had nowhere to deliver it). So the panel looked along
# the path in the lab itself (`ip route get`, the interfaces, the ARP table on each
# node) and found the interface that is down. Plug the cable back in:

# %%
wb.lab["c2"].set_up("eth0")                         # ip -n c2 link set eth0 up
import time

time.sleep(1)                                       # the link takes a moment to come up
print(wb.ping_panel.ping("c1", "172.17.0.3", count=3))

# %% [markdown]
# ## 4 · Capture the packets
#
# In the *Capture* tab: pick node `c2`, interface `eth0`, keep the filter `icmp or arp`,
# click **Start**, ping from the *Ping* tab, watch the packet count, then click **Stop**.
#
# **Predict.** `c1` pinged `c2` a moment ago. Will this ping need an ARP request first?

# %%
wb.capture_panel.start("c2", "eth0", filter="icmp or arp")   # the Start button
wb.ping_panel.ping("c1", "172.17.0.3", count=2)
packets = wb.capture_panel.stop()                            # the Stop button
packets[["direction", "src_mac", "dst_mac", "stack", "src_ip", "dst_ip", "icmp_type"]]

# %% [markdown]
# Four ICMP packets (two requests, two replies) and, most likely, no ARP: `c1` still
# remembers `c2`'s MAC address from the earlier pings. The capture panel also draws a
# timeline and the protocol breakdown. Here the same packets as a *ladder*: one column
# per node, one arrow per packet from sender to receiver, time running down (Wireshark
# calls it *Statistics › Flow Graph*):

# %%
from labkit import diagrams

diagrams.ladder(packets, lab=wb.lab)                        # columns named after the lab's nodes

# %% [markdown]
# ## 5 · The panels on their own
#
# Each part is also one call, and works on any lab, including one built in code:
#
# | call | shows |
# |---|---|
# | `builder(template)` | forms, plan, code, Build / Tear down |
# | `diagram(lab)` | a drawing that redraws itself when the lab changes |
# | `ping_panel(lab)` | source and destination pickers, results, explanations |
# | `capture_panel(lab)` | node and interface pickers, BPF filter, live count, table and plots |
#
# A lab built with code, drawn live: add a node in the next cell and watch it appear.

# %%
from labkit import Lab
from labkit.widgets import diagram, templates

lab = Lab("by-code")
templates.veth_pair(lab)                            # notebook 01's two containers and a cable
d = diagram(lab)
d

# %%
c3 = lab.add_host("c3")                             # the diagram above redraws within seconds
lab.link("c2", c3)
d.refresh()                                         # (or redraw at once)
print("drawn:", [n["name"] for n in d.data["nodes"]], f"{len(d.data['links'])} links")

# %% [markdown]
# ## 6 · Clean up
#
# **Tear down** (or `close()`) ends a lab: every namespace, cable and process goes.

# %%
d.close()
lab.close()
wb.close()
print(wb.lab, lab)

# %% [markdown]
# ## Summary
#
# * `workbench(template)` builds, pings and captures with clicks; every widget also has
#   a method that does the same from code (`build()`, `ping()`, `start()`, `stop()`).
# * The builder shows the labkit code and the `ip` commands of what it built: the next
#   notebooks start from that code.
# * A failed ping is explained from ping's own messages, or, when there is only silence,
#   from the lab's routes, links and ARP table along the path.
#
# The widgets above now show a snapshot of how they looked when they were closed: a
# saved notebook keeps that picture, and running the cells again brings them back.

# %% [markdown]
# ## Questions to think about
#
# 1. The ladder of section 4 has no ARP. What would you do to see the ARP exchange in a
#    capture, without waiting for the ARP entry to expire?
# 2. The panel explained the silent failure of section 3 by looking at the lab. Which
#    `ip` commands would you run by hand, on which node, to find the same cause?
# 3. The builder's *Python* tab and *ip commands* tab describe the same lab. Which one
#    would you keep to rebuild it on a Linux machine without labkit?
#
# <details><summary>Answers (open after you have thought about them)</summary>
#
# 1. Delete the entry first (`ip -n c1 neigh flush dev eth0`, or `c1.run("ip neigh flush
#    dev eth0")`), then capture and ping: the first frame is then the broadcast
#    *who-has*. Notebook 01 captures a first ping from the start.
# 2. `ip -n c1 route get 172.17.0.3` (which interface and next hop), `ip -n c2 -br link`
#    (`eth0` is `DOWN`) and `ip -n c1 neigh` (`c1` still has `c2`'s MAC, which is why it
#    sent the request instead of failing with "Destination Host Unreachable").
# 3. The `ip` commands: they are what labkit itself does, one netlink request per line,
#    and they run as root in any shell. The Python is shorter and carries the lab's
#    life cycle (everything disappears on `lab.close()`).
# </details>
