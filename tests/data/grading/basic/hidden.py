# Hidden checkpoints of exercise 0: appended by the grader, never given to students.

# %%
import ipaddress
from labkit.checkpoints import Checkpoint, checks

with Checkpoint("H.1", "The broadcast address", points=1,
                hint="ipaddress.ip_network(subnet).broadcast_address") as cp:
    want = ipaddress.ip_network(subnet).broadcast_address
    cp.check(checks.expect(ipaddress.ip_address(str(broadcast)) == want,
                           f"broadcast {broadcast} is the broadcast address of {subnet}"))
