"""deploy/ checked against the code it deploys: the compose file, the Kubernetes manifests, the
Prometheus config and rules, the Grafana dashboard.

No container engine or cluster runs here, so nothing in deploy/ is started as a whole. What can be
checked is: every file parses; every Kubernetes manifest validates against the Kubernetes JSON
schemas (kubernetes-validate, which bundles them: offline, strict, so a misspelt field fails);
every setting named is a field of ``config.settings.Settings``; every command is a real `docqa`
subcommand and option; every probe path a real route; every PromQL metric name one that
``app.metrics.Metrics`` really exports. The slow tests run Debian's Prometheus: promtool on the
shipped config, and a real Prometheus scraping a real `docqa serve` and evaluating every
dashboard query and alert rule.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import kubernetes_validate
import pytest
import yaml

from app.routes.health import router as health_router
from config.settings import load_settings
from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR
from tests.deploy_support import (
    DASHBOARD,
    DEPLOY,
    K8S,
    RULES,
    SETTING_ENV,
    VARIABLE,
    PrometheusApi,
    by_kind,
    cli_options,
    compose,
    dashboard_exprs,
    exported_metric_names,
    finite,
    k8s_resources,
    pod_spec,
    prometheus_binaries,
    promql_metric_names,
    rule_exprs,
    strings,
    unknown_settings,
    wait_for,
    yaml_docs,
)
from tests.index.conftest import free_port
from tests.processes import stop
from wiring.compose import llm_engine

K8S_VERSION = "1.33"  # the Kubernetes schemas the manifests are validated against
# Applied by hand, not by the kustomization (each file says why).
NOT_IN_KUSTOMIZATION = {"secret.yaml", "ingest-job.yaml"}
# Metrics that Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# The dashboard's minimum (issue 14): latency by stage, QPS and errors, low confidence, drift,
# queue and job backlog, embedding cache, GPU.
DASHBOARD_MUST_SHOW = {
    "docqa_stage_latency_seconds_bucket",
    "docqa_requests_total",
    "docqa_low_confidence_ratio",
    "docqa_query_drift_pvalue",
    "docqa_queue_depth",
    "docqa_ingest_jobs",
    "docqa_embedding_cache_hits_total",
    "docqa_embedding_cache_misses_total",
    "docqa_gpu_utilization_ratio",
    "docqa_gpu_memory_used_bytes",
}


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    return exported_metric_names(monkeypatch)


def test_promql_metric_names_leaves_out_functions_labels_strings_and_durations() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, stage) "
        '(rate(a_bucket{stage=~"x y|z"}[$__rate_interval])))'
        " / on(instance) group_left(gpu) b offset 5m + sum(c) without (job) > bool 1e3"
        " and max_over_time(d[1h:5m])"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b", "c", "d"}
    assert promql_metric_names("up == 0") == {"up"}


# ---- every file parses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_yaml_file_in_deploy_parses(path: Path) -> None:
    assert yaml_docs(path), f"{path} holds no YAML document"


def test_the_dashboard_is_json_with_unique_panel_ids() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(p.get("targets") for p in panels)


# ---- Kubernetes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,resource", [pytest.param(n, r, id=n) for n, r in k8s_resources()])
def test_k8s_manifest_validates_against_the_kubernetes_schema(
    name: str, resource: dict[str, Any]
) -> None:
    error = None
    try:  # strict: additionalProperties false, so a misspelt field fails too
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        error = f"{'.'.join(str(p) for p in exc.path)}: {exc.message}"
    except kubernetes_validate.SchemaNotFoundError as exc:  # a kind it has no schema for
        error = exc.message
    assert error is None, f"{name}: {error}"


def test_the_kustomization_lists_every_manifest_but_the_hand_applied_ones() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk - NOT_IN_KUSTOMIZATION)
    assert on_disk >= NOT_IN_KUSTOMIZATION


def test_k8s_names_only_real_settings() -> None:
    names = set(by_kind("ConfigMap")["docqa-config"]["data"])
    secret = set(by_kind("Secret")["docqa-secrets"]["stringData"])
    names |= secret
    for _, res in k8s_resources():
        if res["kind"] in ("Deployment", "StatefulSet", "Job"):
            for container in pod_spec(res)["containers"]:
                names |= {e["name"] for e in container.get("env", [])}
    assert unknown_settings(names) == [], "not fields of config.settings.Settings"
    assert secret - SETTING_ENV == {"POSTGRES_PASSWORD"}


def test_k8s_api_worker_and_job_run_real_commands_with_real_probes() -> None:
    deployments, routes = by_kind("Deployment"), {r.path for r in health_router.routes}  # type: ignore[attr-defined]
    api, worker = deployments["docqa-api"], deployments["docqa-worker"]
    assert api["spec"]["replicas"] == 2
    (container,) = pod_spec(api)["containers"]
    assert container["command"] == ["docqa", "serve"]
    assert {"name": "DOCQA_WORKER", "value": "false"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= routes
    (container,) = pod_spec(worker)["containers"]
    assert container["command"] == ["docqa", "worker"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1

    job = by_kind("Job")["docqa-ingest"]
    assert pod_spec(job)["restartPolicy"] == "OnFailure"
    (container,) = pod_spec(job)["containers"]
    command = container["command"]
    assert command[:2] == ["docqa", "ingest"]
    options = {arg for arg in command[2:] if arg.startswith("-")}
    assert options <= cli_options("ingest"), "not options of `docqa ingest`"
    url = urlsplit(command[command.index("--url") + 1])
    assert (url.hostname, url.port) == ("docqa-api", _service_port("docqa-api"))


def _service_port(name: str) -> int:
    (port,) = by_kind("Service")[name]["spec"]["ports"]
    return int(port["port"])


def test_k8s_urls_name_the_services_and_the_secret_agrees_with_itself() -> None:
    config = by_kind("ConfigMap")["docqa-config"]["data"]
    secret = by_kind("Secret")["docqa-secrets"]["stringData"]
    chroma = urlsplit(config["DOCQA_CHROMA_URL"])
    assert (chroma.hostname, chroma.port) == ("docqa-chroma", _service_port("docqa-chroma"))
    database = urlsplit(secret["DOCQA_DATABASE_URL"])
    assert (database.hostname, database.port) == ("docqa-postgres", _service_port("docqa-postgres"))
    assert database.password == secret["POSTGRES_PASSWORD"]


def test_k8s_services_select_pods_on_named_ports_and_statefulsets_keep_volumes() -> None:
    workloads = [r for _, r in k8s_resources() if r["kind"] in ("Deployment", "StatefulSet")]
    for name, service in by_kind("Service").items():
        selected = [
            w
            for w in workloads
            if service["spec"]["selector"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {name} selects {len(selected)} workloads"
        ports = {p["name"] for c in pod_spec(selected[0])["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name
    for name, sts in by_kind("StatefulSet").items():
        assert sts["spec"]["serviceName"] in by_kind("Service"), name
        claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
        mounts = {m["name"] for c in pod_spec(sts)["containers"] for m in c["volumeMounts"]}
        assert claims and claims <= mounts, name


def test_k8s_service_links_cannot_shadow_a_setting() -> None:
    # Kubernetes injects NAME_SERVICE_HOST, NAME_PORT... for every Service into every pod that
    # keeps service links; a Service named `docqa` would set DOCQA_PORT=tcp://... in docqa pods.
    for name, service in by_kind("Service").items():
        n = name.upper().replace("-", "_")
        injected = {f"{n}_SERVICE_HOST", f"{n}_SERVICE_PORT", f"{n}_PORT"}
        for port in service["spec"]["ports"]:
            tcp = f"{n}_PORT_{port['port']}_{port.get('protocol', 'TCP')}"
            injected |= {tcp, f"{tcp}_PROTO", f"{tcp}_PORT", f"{tcp}_ADDR"}
            injected.add(f"{n}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}")
        assert not injected & SETTING_ENV, name
    for _, res in k8s_resources():
        if res["kind"] in ("Deployment", "Job") and res["metadata"]["name"].startswith("docqa-"):
            assert pod_spec(res)["enableServiceLinks"] is False, res["metadata"]["name"]


# ---- compose -------------------------------------------------------------------------------


def test_compose_has_the_services_each_with_an_image_or_a_build() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "chroma", "postgres", "prometheus", "grafana", "vllm"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_compose_names_only_real_settings() -> None:
    services = compose()["services"]
    for name in ("api", "worker"):
        environment = services[name]["environment"]
        assert isinstance(environment, dict), "environment as a mapping"
        assert unknown_settings(environment) == [], f"{name}: not fields of Settings"
    example = (DEPLOY / "env.example").read_text()
    assert unknown_settings(re.findall(r"^#?\s*(DOCQA_\w+)=", example, re.M)) == []


def test_compose_api_worker_and_the_stores_are_wired() -> None:
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    assert api["command"] == ["docqa", "serve"] and worker["command"] == ["docqa", "worker"]
    assert api["environment"]["DOCQA_WORKER"] == "false"
    assert api["environment"]["DOCQA_UI_ENABLED"] == "true"
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    for service in (api, worker):
        for store in ("chroma", "postgres"):
            assert service["depends_on"][store]["condition"] == "service_healthy"
            assert "healthcheck" in services[store], store
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    (gpu,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert services["vllm"]["profiles"] == ["vllm"]
    assert [n for n, s in services.items() if "profiles" in s] == ["vllm"]
    assert api["depends_on"]["vllm"]["required"] is False
    env = compose({"POSTGRES_PASSWORD": "pw"})["services"]["api"]["environment"]
    chroma, database = urlsplit(env["DOCQA_CHROMA_URL"]), urlsplit(env["DOCQA_DATABASE_URL"])
    assert (chroma.hostname, chroma.port) == ("chroma", 8000)
    assert (database.hostname, database.port, database.password) == ("postgres", 5432, "pw")
    assert services["postgres"]["environment"]["POSTGRES_USER"] == database.username


def test_compose_takes_its_secrets_from_the_env_file_and_the_example_lists_them() -> None:
    services = compose()["services"]
    env = services["api"]["environment"]
    required = r"\$\{\w+:\?[^}]*\}"
    assert re.fullmatch(required, env["DOCQA_API_KEYS"])
    assert "${POSTGRES_PASSWORD:?" in env["DOCQA_DATABASE_URL"]
    assert re.fullmatch(required, services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    assert re.fullmatch(required, services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"])
    example = set(re.findall(r"^#?\s*(\w+)=", (DEPLOY / "env.example").read_text(), re.M))
    used = {m[1] for value in strings(compose()) for m in re.finditer(VARIABLE, value)}
    assert {"POSTGRES_PASSWORD", "DOCQA_API_KEYS", "IMAGE_BASE"} <= used <= example
    vllm_url = re.search(r"DOCQA_GENERATOR_URL=(\S+)", (DEPLOY / "env.example").read_text())
    assert vllm_url and urlsplit(vllm_url.group(1)).hostname in services


def test_an_empty_generator_url_means_the_in_process_model() -> None:
    # compose.yaml passes DOCQA_GENERATOR_URL=${DOCQA_GENERATOR_URL:-}: empty without vLLM.
    assert llm_engine(load_settings(environ={"DOCQA_GENERATOR_URL": ""})).engine != "remote"


def test_compose_mounts_exist_and_match_the_configs_inside() -> None:
    services = compose()["services"]
    mounts = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
                mounts[source] = target
    config = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    assert config.split("=", 1)[1] == mounts["./prometheus"] + "/prometheus.yml"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["api"] and dns["port"] == int(
        services["api"]["environment"]["DOCQA_PORT"]
    )
    assert job["metrics_path"] == "/metrics"
    provider = yaml_docs(DEPLOY / "grafana" / "provisioning" / "dashboards" / "docqa.yaml")[0]
    assert provider["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]


# ---- metrics: the dashboard and the rules read what the service exports --------------------


def test_the_exposition_has_every_kind_of_name(exported: set[str]) -> None:
    assert {
        "docqa_requests_total",
        "docqa_stage_latency_seconds_bucket",
        "docqa_embedding_cache_hits_total",
        "docqa_ingest_jobs",
        "docqa_gpu_memory_used_bytes",
        "docqa_model_info",
    } <= exported


@pytest.mark.parametrize("title,expr", [*dashboard_exprs(), *rule_exprs()])
def test_every_query_reads_exported_metrics(title: str, expr: str, exported: set[str]) -> None:
    names = promql_metric_names(expr)
    assert names, f"{title}: no metric in {expr!r}"
    assert names <= exported | PROMETHEUS_OWN, f"{title}: unknown {names - exported}"


def test_the_dashboard_shows_what_issue_14_asks_for() -> None:
    used = set().union(*(promql_metric_names(e) for _, e in dashboard_exprs()))
    assert used >= DASHBOARD_MUST_SHOW, DASHBOARD_MUST_SHOW - used


def test_the_dashboard_uses_the_provisioned_datasource() -> None:
    path = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
    (source,) = yaml_docs(path)[0]["datasources"]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    uids = {p["datasource"]["uid"] for p in panels}
    uids |= {t["datasource"]["uid"] for p in panels for t in p["targets"]}
    assert uids == {source["uid"]}
    assert urlsplit(source["url"]).hostname in compose()["services"]


# ---- a real Prometheus (Debian's package: `make prometheus`) -------------------------------


@pytest.mark.slow
def test_promtool_accepts_the_shipped_prometheus_config_and_rules() -> None:
    _, promtool = prometheus_binaries()
    config = DEPLOY / "prometheus" / "prometheus.yml"
    done = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout + done.stderr


@pytest.mark.slow
def test_the_low_confidence_alert_fires_on_a_rise_not_on_the_thresholds_steady_share(
    tmp_path: Path,
) -> None:
    """The default profile's fitted threshold flags 25-60% of answers as a matter of course;
    the alert is for a rise over the service's own week (promtool's rule unit tests)."""
    _, promtool = prometheus_binaries()
    rules = DEPLOY / "prometheus" / "rules.yml"
    summary = "Low-confidence answers are 20 points over their 7-day mean"
    case = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "5m",  # a scrape every 5 minutes (1m loads too many samples)
                # a week and a bit at 60% flagged, then an hour at 90%
                "input_series": [
                    {
                        "series": 'docqa_low_confidence_ratio{instance="api"}',
                        "values": "0.6x2040 0.9x12",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "10190m", "alertname": "DocqaLowConfidence", "exp_alerts": []},
                    {
                        "eval_time": "10250m",
                        "alertname": "DocqaLowConfidence",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning"},
                                "exp_annotations": {"summary": summary},
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "low_confidence_test.yml"
    path.write_text(yaml.safe_dump(case), encoding="utf-8")
    done = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def prometheus_binary() -> str:
    """Asked before `docqa_serve`, so a missing Prometheus skips before a server starts."""
    return prometheus_binaries()[0]


@pytest.fixture
def docqa_serve(tmp_path: Path, test_models: ModelCache) -> Iterator[tuple[str, Path]]:
    """A real `docqa serve` on the test profile on a free loopback port: (its URL, its log)."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(tmp_path / "data"),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
        "DOCQA_UI_ENABLED": "false",
        "DOCQA_ANSWER_MAX_TOKENS": "16",
    }
    cmd = [sys.executable, "-m", "docqa", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = lambda: proc.poll() is None and httpx.get(f"{base}/readyz").status_code == 200  # noqa: E731
        wait_for("docqa serve ready", ready, 120, [log])
        yield base, log
    finally:
        stop(proc)


@pytest.mark.slow
def test_a_real_prometheus_scrapes_docqa_and_evaluates_every_query(
    prometheus_binary: str, docqa_serve: tuple[str, Path], tmp_path: Path
) -> None:
    prometheus = prometheus_binary
    base, serve_log = docqa_serve
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "docqa-api",  # the job deploy/prometheus names, and the rules
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [base.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    port, log = free_port(), tmp_path / "prometheus.log"
    cmd = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    prom, logs = PrometheusApi(f"http://127.0.0.1:{port}"), [log, serve_log]
    try:
        wait_for("a first scrape", lambda: prom.number('up{job="docqa-api"}') == 1, 60, logs)
        before = wait_for(
            "docqa_requests_total", lambda: prom.number("sum(docqa_requests_total)"), 30, logs
        )
        upload = httpx.post(
            f"{base}/v1/collections/docs/documents?wait=true",
            files={"file": ("ops.md", b"# Ops\n\nThe pager rotation changes every Monday.\n")},
            timeout=120,
        )
        assert upload.status_code == 200, upload.text
        questions = ["When does the pager rotation change?", "What changes every Monday?", "Pager?"]
        for n, question in enumerate(questions):
            r = httpx.post(f"{base}/v1/ask", json={"question": question}, timeout=120)
            assert r.status_code == 200, r.text
            if n == 0:
                time.sleep(2.5)  # a scrape between two answers: rate() then sees an increase

        asks = 'sum(docqa_requests_total{endpoint="/v1/ask"})'
        wait_for("the asks counted", lambda: (prom.number(asks) or 0) >= len(questions), 30, logs)
        assert (prom.number("sum(docqa_requests_total)") or 0) > before
        p95 = "histogram_quantile(0.95, sum by (le) (rate(docqa_stage_latency_seconds_bucket[1m])))"
        value = wait_for("a p95 that is a number", lambda: finite(prom.number(p95)), 30, logs)
        assert 0 < value < 120

        for _, expr in dashboard_exprs():  # every panel's query parses and evaluates
            prom.query(expr.replace("$__rate_interval", "1m"))
        evaluated = lambda: all(r["health"] != "unknown" for r in prom.rules()) and prom.rules()  # noqa: E731
        loaded = wait_for("the rules evaluated", evaluated, 30, logs)
        assert len(loaded) == len(rule_exprs())
        assert all(r["health"] == "ok" for r in loaded), [r for r in loaded if r["health"] != "ok"]
    finally:
        stop(proc)
