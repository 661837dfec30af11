"""The charts `make render` caches (.cache/charts/<chart>-<version>.tgz), as `make validate` reads
them: values.yaml and, when the chart ships one, values.schema.json. One reader for both flavors."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from airflow_gitops.facts import CHART_CACHE
from airflow_gitops.objects import Loader


@dataclass(frozen=True)
class CachedChart:
    values: dict  # its values.yaml (the chart defaults)
    schema: dict | None  # its values.schema.json (the official chart's; the community chart has none)


def cached_chart(repo: Path, chart: str, version: str) -> CachedChart | None:
    """The cached chart <chart>-<version>, or None when `make render` has not cached it."""
    path = repo / CHART_CACHE / f"{chart}-{version}.tgz"
    if not path.is_file():
        return None
    stat = path.stat()
    return _read(str(path), chart, stat.st_mtime_ns, stat.st_size)  # a re-cached chart is read again


@lru_cache(maxsize=8)
def _read(path: str, chart: str, _mtime_ns: int, _size: int) -> CachedChart:
    with tarfile.open(path) as tar:
        values = tar.extractfile(f"{chart}/values.yaml")
        try:
            schema = tar.extractfile(f"{chart}/values.schema.json")
        except KeyError:
            schema = None
        return CachedChart(yaml.load(values.read(), Loader=Loader) if values else None,  # type: ignore[arg-type]
                           json.loads(schema.read()) if schema else None)
