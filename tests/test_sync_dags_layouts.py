"""sync_dags.py on real DAG layouts: what is published, and a check of exactly what Airflow will see.

Helpers beside the DAGs, helper packages kept from parsing by .airflowignore, symlinks inside and outside
the source; the check compiles what Airflow parses and, with the real Airflow of `make runtime`, loads
its DagBag with the published tree as DAGS_FOLDER. And the volume's own layout: a ROOT left by the
two-slot publisher is upgraded to releases by the first publish.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow_gitops.dagsync.ignore import airflow_listing, glob_regex
from helpers.paths import skip_or_fail
from helpers.sync_dags import (
    PYTHON,
    TOOL,
    copy_tree,
    live,
    live_id,
    make_tree,
    ok,
    publish,
    releases,
    run,
    snapshot,
    stats,
    status,
    two_slot_layout,
)
from helpers.tools import airflow_python

ETL = '''\
from datetime import datetime

from airflow import DAG
from airflow.operators.empty import EmptyOperator
from helpers import OWNER
from my_company.naming import dag_id

with DAG(dag_id("etl"), start_date=datetime(2024, 1, 1), schedule=None, default_args={"owner": OWNER}):
    EmptyOperator(task_id="load")
'''
NAMING = '''\
# Imported by DAG files, never a DAG itself: .airflowignore keeps Airflow from parsing it.
from airflow.models.dag import DAG  # noqa: F401  (mentions "airflow" and "dag": it would be parsed)


def dag_id(name):
    return "my_company_" + name
'''


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


def company_layout(root: Path) -> Path:
    """dags/ with a helper module, an ignored helper package, a linked shared directory and a nested ignore."""
    write(root, {
        "dags/etl.py": ETL,
        "dags/helpers.py": 'OWNER = "data-team"\n',
        "dags/my_company/__init__.py": "",
        "dags/my_company/naming.py": NAMING,
        "dags/.airflowignore": "my_company/\n",
        "lib/shared.py": 'from airflow import DAG  # noqa: F401\nSCHEDULE = "@daily"\n',
        "dags/reports/report.py": ETL.replace('dag_id("etl")', '"report"').replace(
            "from helpers import OWNER", "from helpers import OWNER\nfrom lib.shared import SCHEDULE"),
        "dags/reports/.airflowignore": "^reports/drafts\n",  # regexp: relative to the DAG folder
        "dags/reports/drafts.py": "from airflow import DAG\nimport not_installed_anywhere\n",
    })
    os.symlink("../lib", root / "dags/lib")  # inside the source when the source is the repository
    return root


# --------------------------------------------------------------------------------------------- publishing
def test_ignored_helper_package_and_helpers_are_published(tmp_path: Path) -> None:
    src = company_layout(tmp_path / "repo") / "dags"
    shutil.rmtree(src / "reports")
    (src / "lib").unlink()
    root = tmp_path / "efs/dags"

    ok(publish(src, root))

    tree = snapshot(live(root))
    for rel in ("etl.py", "helpers.py", ".airflowignore", "my_company/__init__.py", "my_company/naming.py"):
        assert tree[rel] == ("f", (src / rel).read_bytes()), rel


def test_symlinks_inside_the_source_are_published_as_what_they_point_to(tmp_path: Path) -> None:
    repo = company_layout(tmp_path / "repo")
    os.symlink("etl.py", repo / "dags/etl_alias.py")
    os.symlink("dags/my_company", repo / "company")  # a directory link, to a directory of the same tree
    root = tmp_path / "efs/dags"

    ok(publish(repo, root))

    tree = live(root)
    links = [os.path.join(d, n) for d, ds, fs in os.walk(tree) for n in ds + fs if os.path.islink(os.path.join(d, n))]
    assert links == []  # nothing to dangle where the volume is mounted, no "Detected recursive loop" in Airflow
    assert (tree / "dags/lib/shared.py").read_bytes() == (repo / "lib/shared.py").read_bytes()
    assert (tree / "dags/etl_alias.py").read_bytes() == (repo / "dags/etl.py").read_bytes()
    assert (tree / "company/naming.py").read_bytes() == (repo / "dags/my_company/naming.py").read_bytes()


def test_symlinks_leaving_the_source_are_refused_naming_the_link(tmp_path: Path) -> None:
    src = company_layout(tmp_path / "repo") / "dags"  # now dags/lib -> ../lib leaves the source
    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\n")
    os.symlink(outside, src / "absolute.py")
    root = tmp_path / "efs/dags"

    for proc in (publish(src, root), run("check", "--source", src)):
        assert proc.returncode == 1, proc.stderr
        assert "lib:0:symlink -> ../lib leaves the source" in proc.stderr
        assert f"absolute.py:0:symlink -> {outside} leaves the source" in proc.stderr
        assert "2 symlink problem(s)" in proc.stderr
    assert not root.exists()  # nothing written


def test_dangling_and_looping_symlinks_are_refused(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a/dag.py": "x = 1\n"})
    os.symlink("missing.py", src / "a/gone.py")
    os.symlink("..", src / "a/up")

    proc = publish(src, tmp_path / "root")

    assert proc.returncode == 1
    assert "a/gone.py:0:symlink -> missing.py dangles" in proc.stderr
    assert "a/up:0:symlink -> .. points at its own parent directory" in proc.stderr


# --------------------------------------------------------------------------------------------- upgrade
def a_moment_ago(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() - seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_the_first_publish_over_the_two_slot_layout_links_from_the_live_slot(tmp_path: Path) -> None:
    v1 = make_tree(tmp_path / "v1", 80)
    root = two_slot_layout(tmp_path / "efs/dags", v1, "r1", idle_left_at=a_moment_ago(600))
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team04/dag_00004.py").write_text("VALUE = 'four'\n")

    result = stats(ok(publish(v2, root, "--revision", "r2", "--stats")))

    assert (result["action"], result["base"], result["written"], result["linked"]) == ("published", "manifest", 1, 79)
    assert os.readlink(root / "current") == f"releases/{live_id(root)}" and snapshot(live(root)) == snapshot(v2)
    dag = "team01/dag_00001.py"
    assert (live(root) / dag).stat().st_ino == (root / ".slot-a" / dag).stat().st_ino
    assert snapshot(root / ".slot-a") == snapshot(v1)  # the slot that was live is left as it was
    report = status(root)
    slots = {slot["slot"]: slot for slot in report["legacy_slots"]}
    assert slots[".slot-a"]["kept"] == slots[".slot-b"]["kept"] == "keep-for"  # superseded like any tree
    assert slots[".slot-a"]["revision"] == "r1" and slots[".slot-a"]["superseded_at"] is not None

    refused = run("rollback", "--root", root)

    assert refused.returncode == 5, refused.stderr
    assert ".slot-a of the old two-slot layout: rolling back to a slot is not supported" in refused.stderr
    assert "publish its revision (r1) again" in refused.stderr
    ok(publish(v1, root, "--revision", "r1"))  # what the refusal says: v1 again, as a release
    ok(run("rollback", "--root", root))
    assert snapshot(live(root)) == snapshot(v2)

    ok(run("prune", "--root", root, "--keep-for", "0", "--grace", "0"))  # past keep-for: the slots go

    assert sorted(os.listdir(root)) == [".lock", ".state.json", "current", "releases"]
    assert status(root)["legacy_slots"] == [] and len(releases(root)) == 2


def test_a_slot_that_was_never_live_goes_with_the_first_prune(tmp_path: Path) -> None:
    """The twin seeded by the two-slot publisher's first run had no readers: nothing keeps it."""
    v1 = make_tree(tmp_path / "v1", 20)
    root = two_slot_layout(tmp_path / "root", v1, "r1")
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team00/dag_00000.py").write_text("VALUE = 2\n")

    proc = ok(publish(v2, root))

    assert "pruned 1: .slot-b" in proc.stdout and not (root / ".slot-b").exists()
    assert not (root / ".slot-b.manifest.json").exists() and (root / ".slot-a").is_dir()


def test_a_two_slot_layout_without_manifests_is_scanned_once(tmp_path: Path) -> None:
    """A ROOT written before the slots had manifests: the live slot is scanned and hashed to link from it."""
    v1 = make_tree(tmp_path / "v1", 30)
    root = two_slot_layout(tmp_path / "root", v1, "r1")
    for manifest in root.glob(".slot-*.manifest.json"):
        manifest.unlink()
    v2 = copy_tree(v1, tmp_path / "v2")
    (v2 / "team00/dag_00000.py").write_text("VALUE = 2\n")

    result = stats(ok(publish(v2, root, "--stats")))

    assert result["base"] == "scanned" and (result["written"], result["linked"]) == (1, 29), result
    assert snapshot(live(root)) == snapshot(v2)
    assert stats(ok(publish(v1, root, "--stats")))["base"] == "manifest"  # releases have theirs


# --------------------------------------------------------------------------------------------- checks
def check(src: Path, *extra: str, env: dict[str, str] | None = None,
          python: str = PYTHON) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, str(TOOL), "check", "--source", str(src), *extra], capture_output=True,
                          text=True, timeout=300, env=env)


def test_without_airflow_the_check_says_import_errors_were_not_checked(tmp_path: Path) -> None:
    probe = subprocess.run([PYTHON, "-c", "import airflow"], capture_output=True)
    if probe.returncode == 0:
        skip_or_fail(f"{PYTHON} can import airflow: the compile-only path cannot be shown with it")
    src = company_layout(tmp_path / "repo") / "dags"
    (src / "lib").unlink()

    proc = ok(check(src))

    assert "import errors were NOT checked" in proc.stdout and "compile only" in proc.stdout
    assert "import errors were NOT checked" in proc.stderr  # also as a warning in the job's log
    assert "2 DAG files parsed" in proc.stdout  # etl.py and reports/report.py; my_company/, drafts ignored


def test_check_compiles_what_airflow_parses_with_its_ignore_rules(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {
        "dag.py": "from airflow import DAG\n",
        "tests/.airflowignore": "fixture*\n",  # glob syntax; a nested file applies to its directory
        "tests/fixture_broken.py": "from airflow import DAG\ndef broken(:\n",
        "util.py": "def broken(:\n",  # no "airflow"/"dag": safe mode does not parse it
    })

    glob = ok(check(src, "--ignore-syntax", "glob"))  # ignored or not parsed: warnings (they break importers)
    assert "warning: tests/fixture_broken.py:2:invalid syntax (not parsed by Airflow" in glob.stderr
    assert "warning: util.py:1:invalid syntax (not parsed by Airflow" in glob.stderr

    regexp = check(src)  # regexp syntax: "fixture*" is re.search()ed in "tests/fixture_broken.py": ignored
    assert regexp.returncode == 0, regexp.stderr
    (src / "tests/.airflowignore").write_text("^fixture\n")  # anchored at the DAG folder, not at tests/
    anchored = check(src)
    assert anchored.returncode == 1 and "tests/fixture_broken.py:2:" in anchored.stderr

    unsafe_env = {**os.environ, "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE": "False"}
    unsafe = check(src, "--ignore-syntax", "glob", env=unsafe_env)
    assert unsafe.returncode == 1 and "util.py:1:" in unsafe.stderr


def test_dagbag_import_errors_are_reported_per_file(tmp_path: Path) -> None:
    """A stand-in airflow package (fast, no runtime needed): its DagBag's import errors become file:line:message."""
    fake = tmp_path / "site/airflow/models"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "dagbag.py").write_text(textwrap.dedent("""\
        import os
        class DagBag:
            def __init__(self, dag_folder, include_examples=True):
                assert dag_folder == os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
                self.import_errors, self.dags = {}, {}
                for d, _, names in os.walk(dag_folder):
                    for n in names:
                        p = os.path.join(d, n)
                        if 'nowhere' in open(p).read():
                            self.import_errors[p] = ('Traceback (most recent call last):\\n  File "' + p
                                + '", line 2, in <module>\\nModuleNotFoundError: No module named nowhere')
        """))
    src = write(tmp_path / "src", {"team01/ok.py": "x = 1\n"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    assert "DagBag: 0 DAGs, no import errors" in ok(check(src, env=env)).stdout
    (src / "team01/imports.py").write_text("import os\nimport nowhere\n")

    proc = check(src, env=env)

    assert proc.returncode == 1
    assert "team01/imports.py:2:ModuleNotFoundError: No module named nowhere" in proc.stderr


# --------------------------------------------------------------------------------------------- real Airflow
def airflow_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "airflow-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}


def test_real_dagbag_check_sees_what_airflow_will_see(tmp_path: Path) -> None:
    """Airflow 2.8.4 (Python 3.9, as in the image) checks the published tree: helpers importable from the
    DAG folder, plugins/ from the plugins folder, the .airflowignore'd package importable but not parsed,
    the linked directory a copy (no recursive loop), the nested .airflowignore applied; and a real import
    error is reported."""
    python = str(airflow_python())
    repo = company_layout(tmp_path / "repo")
    write(repo, {"dags/broken.py": "from airflow import DAG\n\nimport nowhere_to_be_found\n",
                 "plugins/greetings.py": 'HELLO = "hi"\n'})  # SOURCE/plugins: on sys.path as plugins_folder
    env = airflow_env(tmp_path)

    failed = check(repo / "dags", python=python, env=env)  # dags/lib -> ../lib leaves this source
    assert failed.returncode == 1 and "lib:0:symlink -> ../lib leaves the source" in failed.stderr
    os.symlink("dags/helpers.py", repo / "helpers.py")  # the repository root as the DAG folder instead
    shutil.move(repo / "dags/.airflowignore", repo / ".airflowignore")
    (repo / ".airflowignore").write_text("dags/my_company/\n^lib/\n")
    (repo / "dags/reports/.airflowignore").write_text("^dags/reports/drafts\n")
    for name in ("etl.py", "reports/report.py"):  # imports relative to the repository root now
        path = repo / "dags" / name
        text = path.read_text().replace("from my_company", "from dags.my_company")
        text = text.replace("from lib.shared", "from dags.lib.shared")
        path.write_text(text.replace("from helpers", "from greetings import HELLO  # noqa: F401\nfrom helpers"))

    failed = check(repo, python=python, env=env)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    problems = [line for line in failed.stderr.splitlines() if line.split(":")[0].endswith(".py")]
    assert problems == ["dags/broken.py:3:ModuleNotFoundError: No module named 'nowhere_to_be_found'"], failed.stderr

    (repo / "dags/broken.py").unlink()
    passed = ok(check(repo, python=python, env=env))

    assert "DagBag: 2 DAGs, no import errors" in passed.stdout, passed.stdout
    assert "Detected recursive loop" not in passed.stderr
    proc = ok(subprocess.run([python, str(TOOL), "publish", "--source", str(repo), "--root", str(tmp_path / "efs"),
                              "--grace", "0"], capture_output=True, text=True, env=env))  # publish on 3.9 too
    assert "published" in proc.stdout and (tmp_path / "efs/current/dags/lib/shared.py").is_file()


IGNORE_PROBE = """import json, os, sys
from airflow.utils.file import find_path_from_directory
listed = {}
for syntax in ("regexp", "glob"):
    base = os.path.join(sys.argv[1], syntax)
    listed[syntax] = sorted(os.path.relpath(p, base) for p in find_path_from_directory(base, ".airflowignore", syntax))
print(json.dumps(listed))
"""
IGNORE_TREE = {  # path -> file content; .airflowignore files per syntax below
    "a.py": "", "b_test.py": "", "notes.txt": "", "lib/x.py": "", "lib/sub/y.py": "", "libs/z.py": "",
    "pkg/__init__.py": "", "pkg/keep.py": "", "pkg/skip.py": "", "pkg/deep/skip.py": "", "docs/a.md": "",
    "x/lib/q.py": "", "tmp1/t.py": "", "tmp22/t.py": "", "data/[x].py": "", "nested/n.py": "", "nested/m_test.py": "",
    "nested/inner/k.py": "", "nested/inner/l.py": "",
}
IGNORES = {
    "regexp": {".airflowignore": "_test\\.py$\n^lib/\n# comment\ndocs   # trailing comment\npkg/s.*\n(?=x)lookahead\n"
                                 "tmp\\d$\n\\[x\\]",
               "nested/.airflowignore": "^nested/inner/k\n"},
    "glob": {".airflowignore": "*_test.py\n/lib/\ndocs/\npkg/**/skip.py\n!pkg/deep/skip.py\npkg/skip.py\ntmp?/\n"
                               "data/[[]x].py\n",
             "nested/.airflowignore": "inner/k.py\nl.py\n"},
}


def test_ignore_rules_match_airflows_own_listing(tmp_path: Path) -> None:
    """The compile-only check lists files as Airflow 2.8's find_path_from_directory does, in both syntaxes."""
    python = str(airflow_python())
    for syntax, ignores in IGNORES.items():
        write(tmp_path / syntax, {**IGNORE_TREE, **ignores})
    proc = subprocess.run([python, "-c", IGNORE_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=airflow_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    airflow = json.loads(proc.stdout.splitlines()[-1])

    for syntax in IGNORES:
        listed, ignored = airflow_listing(str(tmp_path / syntax), syntax, [])
        assert sorted(listed) == airflow[syntax], syntax
        assert set(listed).isdisjoint(ignored) and len(listed) + len(ignored) == len(IGNORE_TREE) + len(
            IGNORES[syntax]) - 2, syntax  # every file but the two ignore files, once
    assert "pkg/deep/skip.py" in airflow["glob"] and "pkg/skip.py" not in airflow["glob"]  # the rules did bite
    assert "lib/x.py" not in airflow["regexp"] and "x/lib/q.py" in airflow["regexp"]


@pytest.mark.parametrize(("pattern", "path", "matched"), [
    ("my_company/", "my_company/", True), ("my_company/", "my_company", False), ("*.py", "a.py", True),
    ("/tests", "tests/x.py", True), ("a/**/b", "a/x/y/b", True), ("a/**/b", "a/b", True), ("**/", "x", False),
    ("**/", "x/y", True), ("[!a]x", "ax", False), ("[!a]x", "bx", True), ("x?y", "xay", True), ("x?y", "x/y", False),
    ("lib*/", "lib1/", True), ("sub/*.py", "sub/q.py", True), ("sub/*.py", "sub/d/q.py", False),
    ("\\#x", "#x", True), ("foo\\ ", "foo ", True), ("!keep.py", "keep.py", True),
])
def test_glob_patterns_follow_gitignore(pattern: str, path: str, matched: bool) -> None:
    """The regex a glob pattern is matched with (Airflow's glob syntax is gitignore's, via pathspec)."""
    regex, include = glob_regex(pattern)
    assert include is not pattern.startswith("!")
    assert bool(re.match(regex, path)) is matched, regex
