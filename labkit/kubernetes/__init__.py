"""Kubernetes networking for real: pods, CNI plugins, Services (curriculum E).

What is real here: the network namespaces, Debian's CNI reference plugins in
/usr/lib/cni (called exactly as a container runtime calls them), iptables/nftables rules
in the kernel, conntrack. What is played, faithfully: the kubelet and its runtime
(:mod:`.kubelet`), the API server and endpoints controller (:mod:`.control_plane`) and
kube-proxy (:mod:`.proxy`, a lab process writing kube-proxy's own chains and maps)::

    from labkit.kubernetes import Kubernetes, ServicePort

    k8s = Kubernetes(cluster.nodes)                  # pod CIDRs 10.244.1.0/24, .2.0/24, ...
    k8s.route_pod_cidrs()                            # routes between nodes ("host-gw")
    # or: k8s = Kubernetes.on_flannel(flannel)       # pod CIDRs = flannel leases, over flannel.1
    web1 = k8s.run_pod("web-1", node="node1", labels={"app": "web"})
    svc = k8s.create_service("web", selector={"app": "web"}, ports=[ServicePort(80, 8080)])
    k8s.start_proxy("iptables")                      # or "nftables"
    web1.hit(svc.cluster_ip, 80, count=100)          # replies per pod

Modules: :mod:`.cni` (the runtime side of CNI), :mod:`.kubelet` (pods, one machine's CNI
configuration), :mod:`.services` (Services as the API server validates them),
:mod:`.names` (kube-proxy's chain names), :mod:`.iptables_rules` / :mod:`.nftables_rules`
(the two modes' rules), :mod:`.proxy` (the kube-proxy agent), :mod:`.control_plane`,
:mod:`.scaling` (the modes measured), :mod:`.echo` and :mod:`.pause` (the workloads).

Names follow Kubernetes: pod CIDR ``10.244.N.0/24`` for the N-th machine, Services in
``10.96.0.0/12`` (allocated in order from 10.96.0.1), NodePorts in 30000-32767, the CNI
network ``k8s-pod-network`` on bridge ``cni0``.
"""

from ._errors import CniError, ServiceError
from .cni import Attachment, CniCall, CniResult, CniRuntime
from .control_plane import Kubernetes
from .kubelet import Kubelet, Pod, pod_network_config
from .names import ext_chain, nft_service_chain, sep_chain, svc_chain
from .services import Endpoint, Service, ServicePort, ServiceTable

__all__ = [
    "Kubernetes", "Kubelet", "Pod", "pod_network_config",
    "CniRuntime", "CniResult", "CniCall", "Attachment",
    "Service", "ServicePort", "Endpoint", "ServiceTable",
    "svc_chain", "sep_chain", "ext_chain", "nft_service_chain",
    "CniError", "ServiceError",
]
