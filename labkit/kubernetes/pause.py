"""A pause-like process: ``python -m labkit.kubernetes.pause``.

Kubernetes starts one per pod (the *infra* or *sandbox* container, ``registry.k8s.io/pause``):
it joins the pod's network namespace and sleeps until it is told to stop, so the namespace
outlives any of the pod's application containers. This one does the same.
"""

from __future__ import annotations

import signal
import sys


def main() -> int:
    def stop(signum: int, _frame: object) -> None:
        print(f"pause: shutting down, got signal {signum}", flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("pause: holding the pod's namespaces", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
