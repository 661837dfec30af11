"""Story: a platform engineer renders the release for either chart and any answers, and every container
the chart renders is one the kubelet will start. Under runAsNonRoot the kubelet must be able to tell
that a container's user is not root: a user given by name (the pgbouncer and exporter images run as
`nobody`) or root is refused with CreateContainerConfigError, which neither `helm template`, the
schemas nor Pod Security "restricted" notice. `make render` runs the kubelet's check
(airflow_gitops/kubelet.py) on every pod and the KubernetesExecutor's pod template, with the images'
USER from their Dockerfiles (airflow_gitops/images.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import render
import yaml
from airflow_gitops import images, kubelet
from airflow_gitops.facts import NOBODY_UID
from helpers.copying import ENGINES
from helpers.make import render_dev
from helpers.render import render_official, rendered_objects

ANSWER_SETS: dict[str, tuple[str, dict[str, Any]]] = {
    "official-defaults": ("official", {}),
    "official-production-keda-metrics": ("official", {"production_like": True, "keda_autoscaling": True,
                                                      "metrics": "prometheus-operator", "rds_tls_verify": True}),
    "official-kubernetes-argocd": ("official", ENGINES["argocd"]),
    "community-defaults": ("community", {}),
    "community-celerykubernetes-production": ("community", {"executor": "CeleryKubernetesExecutor",
                                                            "production_like": True, "rds_tls_verify": True}),
}


@pytest.fixture(scope="module", params=sorted(ANSWER_SETS))
def rendered(request, tmp_path_factory, copy_project, official_answers, demo_answers) -> tuple[str, list[dict]]:
    flavor, overrides = ANSWER_SETS[request.param]
    answers = {**(official_answers if flavor == "official" else demo_answers), **overrides}
    repo = copy_project(tmp_path_factory.mktemp(request.param) / "repo", answers)
    result = render_official(repo) if flavor == "official" else render_dev(repo)
    assert result.returncode == 0, result.stdout + result.stderr  # make render runs the kubelet's check too
    return request.param, rendered_objects(repo)


def test_the_kubelet_starts_every_container_of_every_pod(rendered) -> None:
    name, objs = rendered
    pods = list(render.pod_specs(objs))
    assert len(pods) >= 6, name
    if "kubernetes" in name:  # the task pods too
        assert any("pod_template" in where for where, _ in pods), name
    for where, spec in pods:
        assert list(kubelet.refusals(spec, where)) == [], where
        for c in kubelet.containers(spec):
            image = images.lookup(c["image"])
            assert image is not None, f"{where} container {c['name']}: image {c['image']} is not in images.py"
            user = kubelet.run_as(spec, c, image)
            assert user.uid != 0, f"{where} container {c['name']} runs as root"


def test_pgbouncer_and_its_exporter_run_as_nobody_by_number(rendered) -> None:
    _, objs = rendered
    (spec,) = [s for w, s in render.pod_specs(objs) if w == "Deployment/airflow-pgbouncer"]
    for c in kubelet.containers(spec):
        sc = kubelet.effective(spec.get("securityContext"), c.get("securityContext"))
        assert sc["runAsNonRoot"] is True
        image = images.lookup(c["image"])
        if image in (images.OFFICIAL_PGBOUNCER, images.OFFICIAL_PGBOUNCER_EXPORTER):
            assert sc["runAsUser"] == NOBODY_UID == image.entry(name="nobody").uid, c["name"]
        else:  # the community chart's image has a numeric USER and the chart gives it
            assert image is images.COMMUNITY_PGBOUNCER and sc["runAsUser"] == 1001, c["name"]


def test_make_render_refuses_a_pgbouncer_whose_user_the_kubelet_cannot_verify(tmp_path: Path, copy_project,
                                                                            official_answers) -> None:
    """The pgbouncer pod securityContext as the template wrote it before: runAsNonRoot, no runAsUser
    (it replaces the chart's runAsUser: pgbouncer.uid). On EKS the pod never starts."""
    repo = copy_project(tmp_path / "repo", official_answers)
    values_file = repo / "deploy/base/values.yaml"
    values = yaml.safe_load(values_file.read_text())
    del values["pgbouncer"]["securityContexts"]["pod"]["runAsUser"]
    values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    result = render_official(repo)
    assert result.returncode != 0
    for container in ("pgbouncer", "metrics-exporter"):
        assert (f"Deployment/airflow-pgbouncer: container {container}: container has runAsNonRoot and image has "
                f"non-numeric user (nobody), cannot verify user is non-root") in result.stderr, result.stderr
    assert "the kubelet would refuse to start these containers (CreateContainerConfigError)" in result.stderr
    assert f"give runAsUser: {NOBODY_UID}" in result.stderr


# ---------------------------------------------------------------- the rule itself, as the kubelet words it
ROOT_IMAGE = images.Image("an image without USER", "example.com/rooted", r".*", "", ("/bin/sh",), (), "/", (),
                          (images.ROOT,), "a Dockerfile without USER")
BAD_UID_IMAGE = images.Image("an image with USER -1", "example.com/bad-uid", r".*", "-1", ("/bin/sh",), (), "/", (),
                             (images.ROOT,), "a Dockerfile with USER -1")
POD = "airflow-x-0_airflow-dev"


@pytest.mark.parametrize(("pod_sc", "container", "refused"), [
    ({"runAsNonRoot": True}, {"image": "apache/airflow:3.1.8"}, None),  # USER 50000
    ({"runAsNonRoot": True}, {"image": "quay.io/prometheus/statsd-exporter:v0.29.0"},
     "container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root"),
    ({"runAsNonRoot": True, "runAsUser": NOBODY_UID}, {"image": "quay.io/prometheus/statsd-exporter:v0.29.0"}, None),
    ({"runAsNonRoot": True}, {"image": "example.com/rooted:1"},
     "container has runAsNonRoot and image will run as root"),
    ({"runAsNonRoot": True}, {"image": "example.com/bad-uid:1"},
     "container has runAsNonRoot and image has an invalid user id (-1)"),
    ({"runAsNonRoot": True, "runAsUser": 5}, {"image": "example.com/rooted:1", "securityContext": {"runAsUser": 0}},
     "container's runAsUser breaks non-root policy"),  # the container's field wins
    ({"runAsNonRoot": True}, {"image": "example.com/rooted:1", "securityContext": {"runAsNonRoot": False}}, None),
    ({}, {"image": "example.com/rooted:1"}, None),  # runAsNonRoot unset: root is allowed
    ({"runAsNonRoot": True}, {"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow:3.1.8"},
     "image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow:3.1.8 is unknown"),  # its USER would decide
    ({"runAsNonRoot": True, "runAsUser": 50000}, {"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a:1"}, None),
])
def test_the_kubelets_run_as_non_root_rule(monkeypatch, pod_sc, container, refused) -> None:
    monkeypatch.setattr(images, "IMAGES", (*images.IMAGES, ROOT_IMAGE, BAD_UID_IMAGE))
    found = kubelet.refusal(POD, {"name": "c", **container}, pod_sc)
    if refused is None:
        assert found is None
    else:
        assert found is not None and found.startswith(refused), found
        assert f'(pod: "{POD}", container: c)' in found, found
