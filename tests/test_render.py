"""Story: before pushing, a user sees exactly what the cluster will run (`make render`) and what a
change does to it (`make diff`), rendered with real helm from the real airflow-helm chart."""

from __future__ import annotations

import base64
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from airflow_gitops import facts
from helpers.copying import commit_all
from helpers.make import run_make, validate_env
from helpers.paths import ROOT, chart_tgz, shared_path
from helpers.render import merged_values

ARGO = {"gitops_engine": "argocd", "git_repo_url": "https://github.com/example/airflow-gitops.git",
        "git_revision": "main"}


def load_dir(folder: Path) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


@pytest.fixture(scope="module")
def chart() -> Path:
    return shared_path("charts", "airflow-8.9.0.tgz")


@pytest.fixture(scope="module", params=["flux", "argocd"])
def rendered(request, tmp_path_factory, copy_project, demo_answers, chart) -> tuple[Path, str]:
    extra = ARGO if request.param == "argocd" else {}
    repo = copy_project(tmp_path_factory.mktemp(request.param) / "repo", {**demo_answers, **extra})
    result = run_make(repo, "render", "ENV=dev", f"CHART={chart}")
    assert result.returncode == 0, result.stdout + result.stderr
    return repo, request.param


def test_render_writes_what_the_cluster_runs(rendered) -> None:
    repo, engine = rendered
    out = repo / "build/render/dev"
    release = yaml.safe_load((out / "release.yaml").read_text())
    assert (release["chart"], release["version"], release["release"], release["namespace"]) == \
        ("airflow", "8.9.0", "airflow", "airflow-dev")
    chart_objects = load_dir(out / "chart")
    for name in ("deployment-airflow-scheduler.yaml", "statefulset-airflow-worker.yaml",
                 "deployment-airflow-pgbouncer.yaml", "secret-airflow-config-envs.yaml", "ingress-airflow-web.yaml"):
        assert name in chart_objects, sorted(chart_objects)
    for path in (out / "chart").iterdir():  # one object per file: diffs stay readable
        assert len([d for d in yaml.safe_load_all(path.read_text()) if d]) == 1, path
    overlay = load_dir(out / "overlay")
    assert "persistentvolume-airflow-dev-dags.yaml" in overlay and "sealedsecret-airflow-db.yaml" in overlay
    # The chart got the values the engine merges, and they reach the pods.
    values = yaml.safe_load((out / "values.yaml").read_text())
    if engine == "flux":
        assert values == merged_values(repo, "dev")
    config_envs = chart_objects["secret-airflow-config-envs.yaml"]["data"]
    envs = {k: base64.b64decode(v).decode() for k, v in config_envs.items()}
    assert envs["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/efs/dags/current"
    assert envs["REDIS_PROPERTIES"].startswith("?ssl_cert_reqs=required&ssl_ca_certs=")


def test_render_refuses_a_chart_that_is_not_the_pinned_one(rendered) -> None:
    repo, _ = rendered
    other = chart_tgz("official")
    result = run_make(repo, "render", "ENV=dev", f"CHART={other}")
    assert result.returncode != 0
    assert f"is airflow {facts.default_version('official')}, but dev pins airflow 8.9.0" in result.stderr


def test_diff_shows_a_one_line_values_change_in_the_rendered_deployment(tmp_path, copy_project, demo_answers,
                                                                           chart) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    commit_all(repo, "generated")
    values = repo / "deploy/overlays/dev/values.yaml"
    values.write_text(values.read_text() + "\nscheduler:\n  replicas: 2\n")
    result = run_make(repo, "diff", "ENV=dev", "BASE=HEAD", f"CHART={chart}")
    assert result.returncode == 0, result.stdout + result.stderr
    files = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("diff -ruN ")]
    assert "render/dev/chart/deployment-airflow-scheduler.yaml" in files
    assert "-  replicas: 1\n+  replicas: 2" in result.stdout
    # Only what the change touches: the scheduler, the env values ConfigMap (same file across
    # its hash rename), the HelmRelease pointing at it, the merged values, the release summary.
    assert len(files) == 5, files
    commit_all(repo, "two schedulers")
    unchanged = run_make(repo, "diff", "ENV=dev", "BASE=HEAD", f"CHART={chart}")
    assert "0 rendered file(s) differ" in unchanged.stdout, unchanged.stdout


@pytest.fixture
def helm_repository(tmp_path: Path, chart: Path) -> Iterator[str]:
    """A real Helm repository on 127.0.0.1 (index.yaml made by `helm repo index`) serving the chart."""
    root = tmp_path / "charts"
    root.mkdir()
    shutil.copy(chart, root)
    env = validate_env()
    subprocess.run([env["HELM"], "repo", "index", str(root)], check=True, env={**env, "HELM_CACHE_HOME": str(
        tmp_path / "h"), "HELM_CONFIG_HOME": str(tmp_path / "h"), "HELM_DATA_HOME": str(tmp_path / "h")})
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_render_pulls_the_chart_from_the_helm_repository_and_caches_it(tmp_path, copy_project, demo_answers,
                                                                        helm_repository) -> None:
    repo = copy_project(tmp_path / "repo", demo_answers)
    source = repo / "deploy/base/helmrepository.yaml"
    source.write_text(source.read_text().replace("https://airflow-helm.github.io/charts", helm_repository))
    first = run_make(repo, "render", "ENV=dev")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (repo / ".cache/charts/airflow-8.9.0.tgz").is_file()
    source.write_text(source.read_text().replace(helm_repository, "http://127.0.0.1:9"))  # now unreachable
    again = run_make(repo, "render", "ENV=dev")
    assert again.returncode == 0, again.stdout + again.stderr  # from .cache/charts


def test_render_refuses_a_chart_object_with_a_key_twice() -> None:
    """helm-controller post-renders with kustomize's strict YAML reader: a key twice (what Helm lets
    through, keeping the last) fails the install there, so make render refuses it first."""
    code = (
        "import sys; sys.path.insert(0, 'template/scripts'); import render\n"
        "ok = \"# Source: airflow/templates/a.yaml\\nkind: Deployment\\nmetadata:\\n  annotations:\\n    a: '1'\\n\"\n"
        "render.duplicate_keys([ok])\n"
        "try:\n    render.duplicate_keys([ok, ok + \"    a: '2'\\n\"])\n"
        "except render.UserError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "airflow/templates/a.yaml: " in proc.stdout and "duplicate key 'a'" in proc.stdout, proc.stdout
