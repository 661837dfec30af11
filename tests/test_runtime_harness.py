"""The runtime harness reads rendered pods the way the kubelet does (fast checks of its own rules)."""

from __future__ import annotations

import pytest
from runtime.pods import _strip_entrypoint
from runtime.rendered import Objects, PodError, container_env, kube_expand


@pytest.mark.parametrize(("value", "expected"), [
    ("$(A)-$(B)", "1-$(B)"),  # an unknown name stays as written
    ("$$(A)", "$(A)"),  # `$$` escapes
    ("$(eval $X_CMD)", "$(eval $X_CMD)"),  # not a variable name: left alone
    ("${A}", "${A}"),  # shell syntax is not Kubernetes syntax
])
def test_kubernetes_dependent_variable_expansion(value: str, expected: str) -> None:
    assert kube_expand(value, {"A": "1"}) == expected


def test_env_from_then_env_in_order_with_secret_refs() -> None:
    objs = Objects(secrets={"cfg": {"X": "from-envfrom", "Y": "y"}, "db": {"password": "pw"}})
    container = {"envFrom": [{"secretRef": {"name": "cfg"}}],
                 "env": [{"name": "X", "value": "literal $(Y)"},
                         {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                         {"name": "O", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}]}
    env = container_env({}, container, objs, "pod-0", "ns", "test")
    assert env == {"X": "literal y", "Y": "y", "P": "pw"}
    with pytest.raises(PodError, match="Secret 'db' has no key 'user'"):
        container_env({}, {"env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}}}]},
                      objs, "pod-0", "ns", "test")


def test_image_entrypoint_is_dropped() -> None:
    assert _strip_entrypoint(["/usr/bin/dumb-init", "--", "/entrypoint", "bash", "-c", "x"]) == ["bash", "-c", "x"]
    assert _strip_entrypoint(["/usr/bin/dumb-init", "--rewrite=15:2", "--", "/bin/sh", "-c", "x"]) == \
        ["/bin/sh", "-c", "x"]
