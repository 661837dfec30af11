"""Compile each distinct template string once per Copier run (a Jinja extension, no behaviour change).

Copier compiles every string it renders from scratch: each part of each path, the answers file's
name once per file, every question's `when`, default, help and validator. One copy of an environment
makes about 1,270 such compiles of about 230 distinct strings, 1,030 of them with no Jinja at all:
the largest share of what this template adds to Copier's own time (benchmarks/bench_copy.py). A
compiled Template holds no render state (each render gets a fresh context), so handing back the same
object for the same source, in the same Environment, renders exactly what a fresh compile would.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, Template
from jinja2.ext import Extension


class CompileCacheExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        compile_string = environment.from_string
        compiled: dict[str, Template] = {}

        def from_string(source: Any, globals: Any = None, template_class: Any = None) -> Template:
            if globals is not None or template_class is not None or not isinstance(source, str):
                return compile_string(source, globals, template_class)
            template = compiled.get(source)
            if template is None:
                template = compiled[source] = compile_string(source)
            return template

        # One cache per Environment: `copier update` builds one for the old template and one for the new.
        environment.from_string = from_string  # type: ignore[method-assign]
