"""What tests/test_deploy.py reads deploy/ and the code with: the deploy files parsed, the
settings' environment names, the `docqa` CLI's options, the metric names a PromQL query reads and
the ones the service exports, and a real Prometheus's HTTP API."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from prometheus_client import generate_latest

import app.metrics
from config.settings import ENV_PREFIX, Settings
from docqa.cli.main import app as cli_app
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "docqa.json"
RULES = DEPLOY / "prometheus" / "rules.yml"

SETTING_ENV = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_resources() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml_docs(path)
    ]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_resources() if d["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
VARIABLE = r"\$\{(\w+)(?:(:?-)([^}]*)|:?\?[^}]*)?\}"


def strings(data: Any) -> Iterator[str]:
    """Every string value in parsed YAML."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings(value)


def compose(variables: dict[str, str] | None = None) -> dict[str, Any]:
    """deploy/compose.yaml as written, or with its ``${NAME...}`` replaced as Compose would from
    ``variables`` (a missing one reads as empty)."""
    text = (DEPLOY / "compose.yaml").read_text()
    if variables is not None:
        text = re.sub(VARIABLE, lambda m: variables.get(m[1], m[3] if m[2] else ""), text)
        text = text.replace("$$", "$")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def cli_options(command: str) -> set[str]:
    """The options of one `docqa` subcommand, from the real CLI."""
    group = typer.main.get_command(cli_app)
    sub = group.commands[command]  # type: ignore[attr-defined]
    return {opt for param in sub.params for opt in param.opts}


def unknown_settings(names: Iterable[str]) -> list[str]:
    """The ``DOCQA_`` names among ``names`` that are no field of ``Settings``."""
    return sorted(n for n in names if n.startswith(ENV_PREFIX) and n not in SETTING_ENV)


# ---- PromQL: which metric names a query reads ----------------------------------------------

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and"}
_PROMQL_WORDS |= {"or", "unless", "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords and labels left out).

    >>> sorted(promql_metric_names('sum by (le) (rate(a_bucket{s="x"}[5m])) / on(i) b'))
    ['a_bucket', 'b']
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries, Grafana's $__rate_interval
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _PROMQL_WORDS:
            continue  # a function or an aggregation, or a keyword
        names.add(word)
    return names


def exported_metric_names(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every series name a `docqa serve` can expose, read from the real exposition text of
    ``app.metrics.Metrics`` with the collectors the service registers at start-up. The GPU
    collector is told CUDA is there (torch then counts 0 devices on this machine), so it yields
    its families with no samples and their names appear in ``# TYPE`` lines."""
    monkeypatch.setattr(app.metrics, "cuda_available", lambda: True)
    metrics = app.metrics.Metrics()
    metrics.watch_cache(lambda: (0, 0))
    metrics.watch_jobs(lambda: {"queued": 0})
    names = set()
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)  # counters are already named ..._total here
            if kind in ("histogram", "summary"):
                names |= {f"{name}_sum", f"{name}_count"}
            if kind == "histogram":
                names.add(f"{name}_bucket")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r.get("alert") or r["record"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def prometheus_binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return prometheus, promtool
    reason = "Debian's prometheus package is not installed (`make prometheus` installs it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


class PrometheusApi:
    """Prometheus's HTTP API: one instant query, its result."""

    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, promql: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.base}/api/v1/query", params={"query": promql}, timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "success", (promql, r.text)
        result: list[dict[str, Any]] = r.json()["data"]["result"]
        return result

    def number(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health (``unknown`` until first evaluated)."""
        groups = httpx.get(f"{self.base}/api/v1/rules", timeout=10).json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


def wait_for(what: str, check: Callable[[], Any], timeout_s: float, logs: list[Path]) -> Any:
    """``check()``'s first truthy value; past the timeout, a failure with the logs' tails."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except (httpx.TransportError, AssertionError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in logs)
            pytest.fail(f"{what} within {timeout_s:.0f} s\n{tails}")
        time.sleep(0.5)


def finite(value: float | None) -> float | None:
    """The value, or None for a missing, NaN or infinite one (an empty ``rate()`` gives NaN)."""
    return value if value is not None and value == value and abs(value) != float("inf") else None
