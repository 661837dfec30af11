"""hooks/compile_cache.py: Copier's repeated compiles become one per string, with the same output."""

from __future__ import annotations

from helpers.paths import load_module
from jinja2 import Environment


def cached_env() -> Environment:
    env = Environment()
    load_module("hooks/compile_cache.py", "compile_cache").CompileCacheExtension(env)
    return env


def test_a_string_is_compiled_once_and_renders_each_context_afresh() -> None:
    env = cached_env()
    first, again = env.from_string("{{ name }}-{{ n + 1 }}"), env.from_string("{{ name }}-{{ n + 1 }}")
    assert first is again
    assert [first.render(name="dev", n=1), again.render(name="prod", n=2)] == ["dev-2", "prod-3"]
    assert env.from_string("{{ name }}") is not first


def test_strings_with_their_own_globals_are_not_shared() -> None:
    env = cached_env()
    plain = env.from_string("{{ x }}")
    scoped = env.from_string("{{ x }}", globals={"x": "scoped"})
    assert scoped is not plain and scoped.render() == "scoped" and plain.render() == ""


def test_each_environment_has_its_own_cache() -> None:
    # copier update renders the old and the new template in one process, each with its own Environment.
    old, new = cached_env(), cached_env()
    new.globals["facts"] = "new"
    assert old.from_string("{{ facts }}").render() == "" and new.from_string("{{ facts }}").render() == "new"
