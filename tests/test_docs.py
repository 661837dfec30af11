"""Story: a newcomer reads the docs and they are true. The README is a short quick start that names the
test command CI runs; docs/questions.md is what copier.yml asks; every version the docs name is one
the template knows; and every README heading, doc or path a comment, help text or message points to
exists.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_gitops import facts
from helpers.paths import ROOT, load_module
from runtime.install import PGBOUNCER, RUNTIMES

# At import: tests that run copier in-process leave `airflow_gitops` bound to a template clone since removed.
install_tools = load_module("template/scripts/install_tools.py", "install_tools_for_docs")

README = ROOT / "README.md"
GENERATED_README = ROOT / "template" / "README.md.jinja"  # the generated repository's README
DOCS = sorted((ROOT / "docs").glob("*.md"))
PROSE = [README, ROOT / "CONTRIBUTING.md", *DOCS]
README_MAX_LINES = 150  # issue 22: the quick start fits on a screen or two
LINE_MAX = 200  # no 1,211-character table rows: a doc reads in a terminal and in a diff


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---------------------------------------------------------------- the README is a quick start
def ci_test_command() -> str:
    """The test command .ci/run runs: its last `make test...` line (the README's test command)."""
    commands = [line.strip() for line in lines_of(ROOT / ".ci" / "run") if re.match(r"^\s*make test", line)]
    assert commands, ".ci/run runs no `make test...` command"
    return commands[-1]


def test_the_readme_is_a_short_quick_start_that_states_the_test_command() -> None:
    text = lines_of(README)
    assert len(text) <= README_MAX_LINES, f"README.md has {len(text)} lines (<= {README_MAX_LINES}): move detail out"
    top = "\n".join(text[:30])
    command = ci_test_command()
    assert "make demo" in top and command in top, f"the README's first 30 lines run the demo and `{command}`"
    section = README.read_text().split("\n## Run the tests\n")
    assert len(section) == 2, "README.md has no '## Run the tests' section (.ci/run runs the README's test command)"
    body = section[1].split("\n## ")[0]
    assert f"\n{command}\n" in body, f"README's 'Run the tests' shows `{command}` alone on a line"
    assert "CONTRIBUTING.md" in body, "'Run the tests' points to CONTRIBUTING.md for the tiers"
    assert shlex.split(command)[0] == "make"


def test_no_doc_line_is_huge() -> None:
    long = [f"{rel(p)}:{n}: {len(line)} characters" for p in PROSE for n, line in enumerate(lines_of(p), 1)
            if len(line) > LINE_MAX]
    assert not long, f"lines over {LINE_MAX} characters (wrap them, or turn the table into a list):\n" + "\n".join(long)


# ---------------------------------------------------------------- docs/questions.md is what copier.yml asks
def test_the_questions_reference_is_current() -> None:
    gen = load_module("docs/gen_questions.py", "gen_questions")
    committed = gen.QUESTIONS_MD.read_text()
    wanted = gen.generated(committed, (ROOT / "copier.yml").read_text())
    assert committed == wanted, "docs/questions.md differs from copier.yml: run `make docs` (docs/gen_questions.py)"


def test_the_questions_reference_lists_every_question_and_its_rules() -> None:
    import yaml

    questions = [k for k, v in yaml.safe_load((ROOT / "copier.yml").read_text()).items()
                 if not k.startswith("_") and v.get("when") is not False]
    text = (ROOT / "docs" / "questions.md").read_text()
    missing = [q for q in questions if f"### `{q}`" not in text]
    assert not missing, missing
    # the secret answers are marked as such, and a required answer says so
    assert text.split("### `db_password`")[1].split("###")[0].count("never stored") >= 1
    assert "no default (required)" in text.split("### `aws_region`")[1].split("###")[0]


# ---------------------------------------------------------------- versions come from facts
VERSION = re.compile(r"(?<![\w.@/-])v?(\d+\.\d+\.\d+)(?![\d]|\.\d)")
# Versions the docs may name that no fact holds, each with why.
VERSION_ALLOW = {
    "5.7.1": "kustomize inside install_tools.py's kubectl v1.34.5 (the binary reports it; nothing pins it)",
    "8.6.0": "copier.yml's extra_pip_packages help: an example requirement, not a version this template uses",
    "0.1.0": "CHANGELOG history: the template release before this one",
    # Jenkins plugin minimums the generated README names for the DAG job: Jenkins is the user's, nothing
    # here installs or checks it, so they live in the README beside their sources.
    "5.0.0": "Jenkins git plugin 5.0.0 (checkout scmGit symbols, jenkinsci/git-plugin#1373)",
    "3.11.1": "Jenkins git-client plugin 3.11.1 (SshHostKeyVerificationStrategy)",
}


def pinned(path: Path) -> set[str]:
    """`name==X.Y.Z` pins of a requirements file."""
    return set(re.findall(r"==(\d+\.\d+\.\d+)", path.read_text()))


def known_versions() -> dict[str, str]:
    """version -> the fact it comes from."""
    known: dict[str, str] = {}

    def add(version: str, source: str) -> None:
        known.setdefault(version.lstrip("v").split("-")[0], source)

    for chart in facts.CHARTS.values():
        add(chart.version, f"facts.CHARTS {chart.label}")
        for release in (chart.default_tag, chart.app_version, *chart.proven):
            add(release, f"facts.CHARTS {chart.label}: default tag, appVersion or proven release")
    for engine in facts.GITOPS_ENGINES:
        for req in facts.cluster_requirements(engine, keda=True, metrics=True, ingress=True, pod_identity=True):
            add(req.minimum, f"facts minimum of {req.name}")
    add(facts.KUBERNETES_VERSION, "facts.KUBERNETES_VERSION")
    for name, version in install_tools.WHEEL_TOOLS.items():
        add(version, f"install_tools.WHEEL_TOOLS[{name!r}]")
    add(install_tools.WHEEL_VERSION, "install_tools.WHEEL_VERSION")
    for release in RUNTIMES:
        add(release, "tests/runtime/install.py RUNTIMES")
    add(PGBOUNCER.version, "tests/runtime/install.py PGBOUNCER")
    for req in ("requirements.txt", "requirements-test.txt", "template/requirements-tools.txt"):
        for version in pinned(ROOT / req):
            add(version, f"{req} pin")
    for version in re.findall(r"@(\d+\.\d+\.\d+)", (ROOT / "Makefile").read_text()):
        add(version, "Makefile npm pin")
    copier_min = re.search(r'^_min_copier_version: "([\d.]+)"', (ROOT / "copier.yml").read_text(), re.M)
    assert copier_min
    add(copier_min.group(1), "copier.yml _min_copier_version")
    project = re.search(r'^version = "([\d.]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert project
    add(project.group(1), "pyproject.toml version")
    return known


def test_every_version_the_docs_name_is_a_fact() -> None:
    known = known_versions()
    stray = [f"{rel(path)}:{n}: {match.group(0)}" for path in [*PROSE, GENERATED_README]
             for n, line in enumerate(lines_of(path), 1) for match in VERSION.finditer(line)
             if match.group(1) not in known and match.group(1) not in VERSION_ALLOW]
    assert not stray, ("versions no fact holds (facts.py, a pinned requirement, tests/runtime/install.py): use the "
                       "fact's value, or add it to VERSION_ALLOW with why:\n" + "\n".join(stray))


def test_the_version_check_refuses_a_version_nobody_pins() -> None:
    known = known_versions()
    assert "3.3.2" in known and "8.9.0" in known and "1.21.0" in known
    found = [m.group(1) for m in VERSION.finditer("chart 1.22.0, Airflow 3.1.9, 127.0.0.1, v1.31, @6.0.0")]
    assert found == ["1.22.0", "3.1.9"]
    assert "1.22.0" not in known and "3.1.9" not in known


# ---------------------------------------------------------------- pointers point somewhere
# Where pointers are looked for: every file a newcomer or a user reads a pointer in.
SCANNED_SUFFIXES = {".py", ".jinja", ".yml", ".yaml", ".md", ".json", ".groovy", ".toml", ".txt", ""}
SKIPPED_DIRS = ("tests/runtime/constraints/", "tests/fixtures/", "template/scripts/chart_keys/")


def scanned_files() -> list[Path]:
    found = [ROOT / name for name in ("copier.yml", "Makefile", ".ci/run", "pyproject.toml", "CHANGELOG.md")]
    found += PROSE
    for top in ("hooks", "template", "tests", "benchmarks", "examples"):
        for path in sorted((ROOT / top).rglob("*")):
            name = rel(path)
            if (path.is_file() and path.suffix in SCANNED_SUFFIXES and "__pycache__" not in name
                    and not name.startswith(SKIPPED_DIRS)):
                found.append(path)
    return found


def joined(source: str) -> tuple[str, list[int]]:
    """The file as one line of text (comment markers and indentation dropped, `\\"` unescaped), so a
    pointer wrapped over lines reads whole; and the offset each original line starts at."""
    parts, starts, offset = [], [], 0
    for line in source.splitlines():
        text = re.sub(r'^\s*(#+|//|\*)?\s*', "", line).replace('\\"', '"')
        starts.append(offset)
        parts.append(text)
        offset += len(text) + 1
    return " ".join(parts), starts


def line_at(starts: list[int], offset: int) -> int:
    return max(i for i, start in enumerate(starts) if start <= offset) + 1


def headings(path: Path) -> list[str]:
    """The Markdown headings of a file, outside fenced code."""
    found, fenced = [], False
    for line in lines_of(path):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"^#{1,6} (.+?)\s*$", line)):
            found.append(match.group(1).replace("`", ""))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def names_heading(reference: str, path: Path) -> bool:
    """A heading of `path` is `reference`, or starts with it followed by its parenthesis or colon."""
    ref = reference.strip().rstrip(".").lower()
    return any(h.lower() == ref or h.lower().startswith((ref + " (", ref + ":")) for h in headings(path))


# `README: "Upgrades"`, `README.md, "First deploy"`, `README's "Move to Airflow 3"`, `README: 'X'`, and
# the unquoted `(README: Before the first deploy)` (capitalised: "(README: also without ...)" is prose).
README_REF = re.compile(r"""README(?:\.md)?(?:'s)?(?:,|:)?\s+(?:section\s+)?(["'])([A-Z][^"'\n]{1,80}?)\1"""
                        r"""|\(README(?:\.md)?: ([A-Z][^()"'\n]{1,80}?)\)""")
# In a Markdown README or doc: `(see "Run the tests")` and `section(s) "A", "B" and "C"`.
SEE_REF = re.compile(r"""\(see "([^"]{2,80})"|sections? ((?:"[^"]{2,80}"(?:,\s*|\s+and\s+|,\s+and\s+)?)+)""")
LINK = re.compile(r"\]\(([^)\s]+)\)")  # Markdown links
# Repository paths: the template's own (hooks/, tests/, docs/, ...) and the generated repo's (scripts/,
# airflow_gitops/: under template/scripts/). Not inside URLs or longer paths (the lookbehind).
# A path cut short by a placeholder (`airflow-<version>.txt`, `{name}.py`, `test_runtime*.py`) is not checked.
PATH = re.compile(r"(?<![\w./@-])((?:hooks|tests|docs|template|benchmarks|examples|scripts|airflow_gitops|\.ci)"
                  r"/[A-Za-z0-9_./-]*+)(?![<{*$\[])")
# Pointers that point at nothing on purpose or cannot be resolved, each with why ((file, target): why).
POINTER_ALLOW: dict[tuple[str, str], str] = {
    # Being fixed by the tests/ helper in parallel (issue 22): the docstring lists ``airflow``, a module
    # that never existed (the Airflow processes are started by tests/runtime/deployment.py).
    ("tests/runtime/__init__.py", "airflow"): "module list being rewritten on another branch",
    # Not this repository's: the path of the entrypoint inside the apache/airflow image (Airflow's source).
    ("tests/runtime/pods.py", "scripts/docker/entrypoint_prod.sh"): "a path in Airflow's repository",
    # Files of the DAG trees these tests build in a temporary directory.
    ("tests/test_sync_dags_layouts.py", "tests/.airflowignore"): "a file of a DAG tree under test",
    ("tests/test_sync_dags_layouts.py", "tests/fixture_broken.py"): "a file of a DAG tree under test",
    ("tests/test_sync_dags_layouts.py", "tests/x.py"): "a file of a DAG tree under test",
    ("tests/test_sync_dags_layouts.py", "docs/a.md"): "a file of a DAG tree under test",
}
NOT_SCANNED = ("tests/test_docs.py",)  # this file: its probes point to nothing on purpose


def readme_targets(source: Path) -> list[Path]:
    """Which README a bare "README" means: in the generated repository's files, its own README; elsewhere
    the template's README or the generated one (copier.yml's help is read while generating it)."""
    if rel(source).startswith("template/"):
        return [GENERATED_README]
    return [README, GENERATED_README]


def resolve_path(source: Path, target: str) -> bool:
    target = target.rstrip(".,:;")
    if not target or "/" not in target:
        return True
    candidates = [ROOT / target]
    if target.startswith(("scripts/", "airflow_gitops/")):
        base = "template/scripts/" if target.startswith("airflow_gitops/") else "template/"
        candidates.append(ROOT / base / target)
    if rel(source).startswith("template/"):
        candidates.append(ROOT / "template" / target)
    return any(c.exists() for c in candidates)


def dangling(path: Path, source: str | None = None) -> Iterator[tuple[int, str, str]]:
    """(line, target, why) for each pointer of `path` (or of `source`, read as if it were `path`) that
    points to nothing."""
    source = path.read_text(errors="replace") if source is None else source
    text, starts = joined(source)
    is_markdown = path.suffix == ".md" or path.name == "README.md.jinja"
    for match in README_REF.finditer(text):
        heading = match.group(2) or match.group(3)
        targets = readme_targets(path)
        if not any(names_heading(heading, t) for t in targets):
            yield (line_at(starts, match.start()), heading,
                   f'README heading "{heading}": no such heading in {" or ".join(rel(t) for t in targets)}')
    if is_markdown:
        for match in SEE_REF.finditer(text):
            refs = [match.group(1)] if match.group(1) else re.findall(r'"([^"]+)"', match.group(2))
            targets = [path, *readme_targets(path)]
            for heading in refs:
                if not any(names_heading(heading, t) for t in targets):
                    yield (line_at(starts, match.start()), heading,
                           f'heading "{heading}": not in {" or ".join(dict.fromkeys(rel(t) for t in targets))}')
        for match in LINK.finditer(text):
            link = match.group(1)
            if re.match(r"^[a-z]+:", link):
                continue
            file, _, anchor = link.partition("#")
            target = (path.parent / file).resolve() if file else path
            if not target.exists():
                yield line_at(starts, match.start()), link, f"link {link}: no file {file}"
            elif anchor and target.suffix == ".md" and anchor not in {slug(h) for h in headings(target)}:
                yield line_at(starts, match.start()), link, f"link {link}: no heading #{anchor} in {rel(target)}"
    for match in PATH.finditer(text):
        if not resolve_path(path, match.group(1)):
            yield line_at(starts, match.start()), match.group(1), f"path {match.group(1)}: no such file or directory"
    if path.name == "__init__.py":  # a package docstring's module list: "- ``name``: what it does"
        for n, line in enumerate(source.splitlines(), 1):
            if (found := re.match(r"^- ``(\w+)``:", line)) and not (
                    (path.parent / f"{found.group(1)}.py").exists() or (path.parent / found.group(1)).is_dir()):
                yield n, found.group(1), f"module ``{found.group(1)}``: no {rel(path.parent)}/{found.group(1)}.py"


def all_dangling() -> list[str]:
    return [f"{rel(path)}:{line}: {why}" for path in scanned_files() if rel(path) not in NOT_SCANNED
            for line, target, why in dangling(path) if (rel(path), target) not in POINTER_ALLOW]


def test_pointers_exist() -> None:
    found = all_dangling()
    assert not found, ("pointers to nothing (fix the pointer or the target; or add it to POINTER_ALLOW in "
                       "tests/test_docs.py with why):\n" + "\n".join(found))


@pytest.mark.parametrize(("text", "why"), [
    ('see the README: "Moving to the official chart"', 'README heading "Moving to the official chart"'),
    ("(README: Before the first deploy)", 'README heading "Before the first deploy"'),
    ("sys.path context, see hooks/facts_path.py", "path hooks/facts_path.py"),
    ("[the checklist](production.md#no-such-item)", "no heading #no-such-item in docs/production.md"),
    ("[the flavors](flavors.md)", "link flavors.md: no file flavors.md"),
    ("- ``airflow``: Airflow processes", None),  # only a package's __init__.py lists its modules
])
def test_a_pointer_to_nothing_is_found(text: str, why: str | None) -> None:
    found = [w for _, _, w in dangling(ROOT / "docs" / "probe.md", text + "\n")]  # read as a doc here
    assert any(why in w for w in found) if why else not found, found


def test_a_package_docstring_naming_a_module_it_lacks_is_found() -> None:
    docstring = '"""Harness.\n\n- ``tls``: certs\n- ``nosuch``: x\n"""\n'
    found = list(dangling(ROOT / "tests" / "runtime" / "__init__.py", docstring))
    assert [(line, target) for line, target, _ in found] == [(4, "nosuch")], found


def test_pointers_that_exist_are_not_reported() -> None:
    text = ('See README: "Run the tests", hooks/validation.py, scripts/seal.py, airflow_gitops/facts/,\n'
            '[questions](questions.md#the-rules-by-question), tests/runtime/constraints/airflow-<version>.txt.\n')
    assert list(dangling(ROOT / "docs" / "probe.md", text)) == []
