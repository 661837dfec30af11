"""Ingress NetworkPolicy semantics, as a CNI enforces them, for tests.

There is no CNI here. This evaluates rendered NetworkPolicies the way
https://kubernetes.io/docs/concepts/services-networking/network-policies/ defines them: a pod no
Ingress policy selects accepts everything; a selected pod accepts a connection only when some rule
of some policy that selects it matches both the peer (podSelector in the policy's namespace,
namespaceSelector, ipBlock) and the port (number, or a name resolved on the destination pod).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> number
    namespace_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """A source outside the cluster's pods (the ALB, a VPC client)."""

    ip: str


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: matchLabels and matchExpressions all hold (the empty selector matches all)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def allowed(policies: list[dict[str, Any]], source: Pod | Address, dest: Pod, port: int,
            protocol: str = "TCP") -> bool:
    """Whether `dest` accepts traffic from `source` on `port` (a TCP connection unless `protocol`)."""
    applying = [p for p in policies if (p["metadata"].get("namespace") or dest.namespace) == dest.namespace
                and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
                and selects(p["spec"].get("podSelector"), dest.labels)]
    if not applying:
        return True
    return any(_rule_matches(rule, policy, source, dest, port, protocol)
               for policy in applying for rule in policy["spec"].get("ingress") or [])


def _rule_matches(rule: dict, policy: dict, source: Pod | Address, dest: Pod, port: int, protocol: str) -> bool:
    peers = rule.get("from")
    peer_ok = peers is None or any(_peer_matches(peer, policy, source, dest) for peer in peers)
    ports = rule.get("ports")
    port_ok = ports is None or any(_port_matches(p, dest, port, protocol) for p in ports)
    return peer_ok and port_ok


def _peer_matches(peer: dict, policy: dict, source: Pod | Address, dest: Pod) -> bool:
    if "ipBlock" in peer:
        if not isinstance(source, Address):
            return False
        ip = ipaddress.ip_address(source.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except") or [])
    if not isinstance(source, Pod):
        return False
    policy_ns = policy["metadata"].get("namespace") or dest.namespace
    if "namespaceSelector" in peer:
        ns_ok = selects(peer["namespaceSelector"], source.namespace_labels)
    else:
        ns_ok = source.namespace == policy_ns
    return ns_ok and ("podSelector" not in peer or selects(peer["podSelector"], source.labels))


def _port_matches(spec: dict, dest: Pod, port: int, protocol: str) -> bool:
    if (spec.get("protocol") or "TCP") != protocol:
        return False
    wanted = spec.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return dest.ports.get(wanted) == port
    return wanted <= port <= int(spec.get("endPort") or wanted)
