"""A generated Jenkinsfile's own Groovy, run by a real Groovy (4.0.26, the jar npm-groovy-lint ships).

There is no Jenkins here. This stands in for the part of Declarative Pipeline that decides where a
build runs, the way pipeline-model-definition does it (RuntimeASTTransformer turns the `pipeline {}`
block into `new Root(...)` with `new Agent(<the agent closure's values>)` arguments, and
ModelInterpreter.call evaluates that closure, `Root root = (Root) closure.call()`, before any stage):

- the script's `@Field` constants and methods are the Jenkinsfile's, compiled by Groovy;
- every `agent { kubernetes { ... } }` block is evaluated once, at "pipeline start", with `params`,
  `env` and `currentBuild` bound as the build has them; its options (`cloud`, `namespace`, `yaml`, ...)
  are recorded as given. A name is the block's when Declarative knows it there (a section, an agent
  type, one of KubernetesDeclarativeAgent's options, a parameter type), else the script's (a method
  such as `target()`, a field): an unknown option, like a typo, fails as in Jenkins;
- `parameters { choice(...) }` is evaluated and recorded; `steps`, `when`, `post`, `options` are not run;
- `error(msg)` stops with msg (Jenkins' AbortException), `echo` is recorded;
- `scmGit(...)` is its arguments; `checkout(...)` returns a GIT_COMMIT, or fails as git-client does
  (an IOException with git's message) when the build is given `checkout_error`;
- `currentBuild.getBuildCauses(className)` answers from the build's causes (Pipeline: Supporting APIs).

A method the script calls that exists in neither the script nor this stand-in fails as in Jenkins
(MissingMethodException). `probe(...)` evaluates further Groovy expressions in the script's context
(its methods and fields), e.g. ``publishRefusal(target(), 'feature/x', true)``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from helpers.paths import ROOT, skip_or_fail

GROOVY_LIB = Path(os.environ.get("GROOVY_LIB", ROOT / ".tools/npm/node_modules/npm-groovy-lint/lib/java/groovy/lib"))
GROOVY_JARS = ("groovy-4.0.26.jar", "groovy-json-4.0.26.jar")

DRIVER = r"""
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import org.codehaus.groovy.control.CompilerConfiguration

class BuildError extends RuntimeException { BuildError(String m) { super(m) } }

abstract class JenkinsScript extends Script {
    Map build
    List echoes = []
    List agents = []
    List parameterDefs = []
    def getParams() { build.params }
    def getEnv() { build.env }
    def getCurrentBuild() {
        [getBuildCauses: { String cls -> build.causes.findAll { it == cls }.collect { [_class: it] } }] as Expando
    }
    void error(String message) { throw new BuildError(message) }
    def scmGit(Map args) { [scmGit: args] }
    def checkout(Object scm) {
        if (build.checkoutError) {
            throw new IOException(build.checkoutError)  // what git-client raises when git fails
        }
        return [GIT_COMMIT: '0123456789abcdef0123456789abcdef01234567', GIT_BRANCH: 'origin/main']
    }
    void echo(String message) { echoes << message }
    void pipeline(Closure body) { walk(body, []) }

    // The Declarative names each block takes; anything else is the script's (DELEGATE_FIRST, then owner).
    static final List SECTIONS = ['agent', 'stages', 'stage', 'parameters', 'options', 'post', 'when', 'steps',
                                  'environment', 'tools', 'triggers', 'input', 'parallel', 'matrix', 'libraries']
    static final List AGENT_TYPES = ['kubernetes', 'label', 'node', 'docker', 'dockerfile']
    // KubernetesDeclarativeAgent's options (its @DataBoundSetters)
    static final List KUBERNETES_OPTIONS = ['activeDeadlineSeconds', 'cloud', 'containerTemplate', 'containerTemplates',
        'customWorkspace', 'defaultContainer', 'idleMinutes', 'inheritFrom', 'instanceCap', 'label', 'namespace',
        'nodeSelector', 'podRetention', 'retries', 'serviceAccount', 'showRawYaml', 'supplementalGroups', 'workingDir',
        'workspaceVolume', 'yaml', 'yamlFile', 'yamlMergeStrategy']
    static final List PARAMETER_TYPES = ['choice', 'string', 'text', 'booleanParam', 'password']

    static Object within(Closure c, Object delegate) {
        c.delegate = delegate
        c.resolveStrategy = Closure.DELEGATE_FIRST
        return c.call()
    }

    void walk(Closure body, List path) {
        def script = this
        def block = new Object() {
            def methodMissing(String name, Object args) {
                if (!(name in JenkinsScript.SECTIONS)) {
                    throw new MissingMethodException(name, this.getClass(), args as Object[])
                }
                List a = args as List
                Closure inner = a && a[-1] instanceof Closure ? a[-1] : null
                if (name == 'agent' && inner) {
                    def options = [:]
                    def kind = new Object() {
                        def methodMissing(String k, Object ka) {
                            if (!(k in JenkinsScript.AGENT_TYPES)) {
                                throw new MissingMethodException(k, this.getClass(), ka as Object[])
                            }
                            options['_kind'] = k
                            JenkinsScript.within((ka as List)[-1], new Object() {
                                def methodMissing(String o, Object oa) {
                                    if (!(o in JenkinsScript.KUBERNETES_OPTIONS)) {
                                        throw new MissingMethodException(o, this.getClass(), oa as Object[])
                                    }
                                    options[o] = (oa as List)[0] instanceof GString ? (oa as List)[0].toString()
                                                                                   : (oa as List)[0]
                                }
                            })
                        }
                    }
                    JenkinsScript.within(inner, kind)
                    script.agents << [stage: path.join(' / '), options: options]
                } else if (name == 'parameters' && inner) {
                    JenkinsScript.within(inner, new Object() {
                        def methodMissing(String p, Object pa) {
                            if (!(p in JenkinsScript.PARAMETER_TYPES)) {
                                throw new MissingMethodException(p, this.getClass(), pa as Object[])
                            }
                            script.parameterDefs << [type: p, args: (pa as List)[0]]
                        }
                    })
                } else if (name in ['stages', 'stage'] && inner) {
                    script.walk(inner, name == 'stage' ? path + [a[0]] : path)
                }
                return null
            }
            def propertyMissing(String name) {
                if (name in ['none', 'any']) {
                    return name  // `agent none`
                }
                throw new MissingPropertyException(name, this.getClass())
            }
        }
        JenkinsScript.within(body, block)
    }
}

def jenkinsfile = new File(args[0]).text
def config = new CompilerConfiguration()
config.scriptBaseClass = JenkinsScript.name
def shell = new GroovyShell(this.class.classLoader, config)
def results = new JsonSlurper().parse(new File(args[1])).collect { input ->
    def source = jenkinsfile
    input.probes.eachWithIndex { expr, i -> source += "\ndef __probe_${i}() {\n    return ${expr}\n}\n" }
    def script = shell.parse(source)
    script.build = [params: input.params, env: input.env, causes: input.causes, checkoutError: input.checkoutError]
    def out = [agents: [], parameters: [], probes: [], error: null]
    try {
        script.run()
    } catch (BuildError e) {
        out.error = e.message
    }
    out.agents = script.agents
    out.parameters = script.parameterDefs.collect { [type: it.type, name: it.args.name, choices: it.args.choices] }
    input.probes.eachWithIndex { expr, i ->
        try {
            def value = script."__probe_${i}"()
            out.probes << [value: value instanceof GString ? value.toString() : value]
        } catch (BuildError e) {
            out.probes << [error: e.message]
        } catch (Exception e) {
            out.probes << [exception: e.toString()]
        }
    }
    out.echoes = script.echoes
    out.env = script.build.env
    out
}
println JsonOutput.toJson(results)
"""


@dataclass
class Build:
    """What the stand-in saw of one build: the agents' options, the parameters, the probes' values."""

    agents: list[dict[str, Any]]
    parameters: list[dict[str, Any]]
    probes: list[dict[str, Any]]
    error: str | None
    echoes: list[str] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)

    def agent(self, stage: str) -> dict[str, Any]:
        (found,) = [a["options"] for a in self.agents if a["stage"] == stage]
        return found


USER_CAUSE = "hudson.model.Cause$UserIdCause"  # Build with Parameters, Replay
BRANCH_EVENT_CAUSE = "jenkins.branch.BranchEventCause"  # a push seen by a multibranch job


@dataclass(frozen=True)
class Start:
    """One build as Jenkins starts it: its parameters, environment (BRANCH_NAME) and causes."""

    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    causes: tuple[str, ...] = (BRANCH_EVENT_CAUSE,)
    probes: tuple[str, ...] = ()
    checkout_error: str | None = None  # git's message, when the checkout fails


def run_builds(jenkinsfile: Path, tmp_path: Path, starts: list[Start]) -> list[Build]:
    """Start builds of `jenkinsfile` as far as Declarative decides their agents (see the module doc),
    in one JVM."""
    jars = [GROOVY_LIB / name for name in GROOVY_JARS]
    if not all(jar.is_file() for jar in jars):
        skip_or_fail(f"Groovy 4.0.26 not found in {GROOVY_LIB} (npm-groovy-lint's): run `make setup`")
    driver = tmp_path / "declarative-driver.groovy"
    driver.write_text(DRIVER)
    data = tmp_path / "builds.json"
    data.write_text(json.dumps([{"params": s.params, "env": s.env, "causes": list(s.causes), "probes": list(s.probes),
                                 "checkoutError": s.checkout_error}
                                for s in starts]))
    proc = subprocess.run(["java", "-cp", os.pathsep.join(map(str, jars)), "groovy.ui.GroovyMain", str(driver),
                           str(jenkinsfile), str(data)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"groovy failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return [Build(o["agents"], o["parameters"], o["probes"], o["error"], o["echoes"], o["env"])
            for o in json.loads(proc.stdout.strip().splitlines()[-1])]


def run_jenkinsfile(jenkinsfile: Path, tmp_path: Path, **start: Any) -> Build:
    """One build (Start's fields as keywords)."""
    return run_builds(jenkinsfile, tmp_path, [Start(**start)])[0]


# ---------------------------------------------------------------- the Jenkinsfile's text, read as Groovy reads it
def fields(jenkinsfile: str) -> dict[str, str]:
    """The Jenkinsfile's scalar `@Field` constants (strings and numbers), as Groovy sees them."""
    found = re.findall(r"^@Field final (?:String|long|int) (\w+) = (?:'([^']*)'|(\d+))$", jenkinsfile, re.M)
    return {name: text or number for name, text, number in found}


def agent_pod(jenkinsfile: str, claim: str) -> dict:
    """The agent pod as Jenkins renders it: the GString with this build's values filled in."""
    template = re.search(r'String agentPod\(Map env\) \{\s*return """\\\n(.*?)"""', jenkinsfile, re.S).group(1)
    values = {**fields(jenkinsfile), "env.claim": claim}
    rendered = re.sub(r"\$\{([\w.]+)\}", lambda m: values[m.group(1)], template)
    return yaml.safe_load(rendered)


def mask(groovy: str) -> str:
    """`groovy` with the insides of strings and comments blanked (same length, delimiters kept), so
    that braces, quotes and keywords found in the result are code."""
    out, i, n = list(groovy), 0, len(groovy)

    def blank(start: int, stop: int) -> None:
        for k in range(start, stop):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        for quote in ('"""', "'''", '"', "'"):
            if groovy.startswith(quote, i):
                j = i + len(quote)
                while not groovy.startswith(quote, j):
                    j += 2 if groovy[j] == "\\" else 1
                blank(i + len(quote), j)
                i = j + len(quote)
                break
        else:
            if groovy.startswith("//", i):
                j = groovy.find("\n", i)
                blank(i, j)
                i = j
            elif groovy.startswith("/*", i):
                j = groovy.index("*/", i) + 2
                blank(i, j)
                i = j
            else:
                i += 1
    return "".join(out)


def steps_in_blocks(groovy: str, step: str) -> list[tuple[int, list[str]]]:
    """Each call of `step` (checkout, sh, ...) in code, with the heads of the blocks that enclose it,
    outermost first: e.g. `stage('Checkout')`, `steps`, `container('jnlp')`, `script`."""
    code = mask(groovy)
    call = re.compile(rf"\b{step}\b\s*[(\"']")
    calls = {m.start() for m in call.finditer(code)}
    stack: list[str] = []
    found = []
    head_start = 0
    for i, ch in enumerate(code):
        if i in calls:
            found.append((i, list(stack)))
        if ch == "{":
            stack.append(" ".join(groovy[head_start:i].split()))
        elif ch == "}":
            stack.pop()
        if ch in "{};\n":
            head_start = i + 1
    assert not stack, "unbalanced braces"
    return found


def sh_commands(groovy: str) -> list[tuple[list[str], str]]:
    """Each `sh` step's command as the shell receives it (GString escapes undone, @Field values
    interpolated), with its enclosing blocks."""
    values = fields(groovy)
    commands = []
    literal = re.compile(r'\s*"((?:[^"\\]|\\.)*)"(\s*\+\s*\n?)?')
    for pos, heads in steps_in_blocks(groovy, "sh"):
        rest, parts = groovy[pos + 2:], []
        while (m := literal.match(rest)):
            parts.append(m.group(1))
            rest = rest[m.end():]
            if not m.group(2):
                break
        gstring = "".join(parts)
        gstring = re.sub(r"(?<!\\)\$\{(\w+)\}", lambda m: values[m.group(1)], gstring)
        commands.append((heads, re.sub(r"\\(.)", r"\1", gstring)))
    return commands
