"""The Kubernetes manifests: generated from the Helm chart's values, current, and valid.

No helm binary installs where Herald is built, so deploy/kubernetes/herald.yaml is rendered
from deploy/helm/herald/values.yaml by deploy/kubernetes/generate.py, and validated here
with kubernetes-validate, offline, against the Kubernetes schemas it bundles.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "herald"
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests promise to run on


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "herald_generate", ROOT / "deploy" / "kubernetes" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _generator()


def objects(**overrides: Any) -> list[dict[str, Any]]:
    rendered: list[dict[str, Any]] = generate.render(generate.load(overrides=overrides))
    return rendered


def by_kind(rendered: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in rendered}


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_committed_manifests_are_what_the_values_generate() -> None:
    committed = (ROOT / "deploy" / "kubernetes" / "herald.yaml").read_text(encoding="utf-8")
    assert committed == generate.to_yaml(generate.load()), (
        "run python deploy/kubernetes/generate.py"
    )


VARIANTS = {
    "defaults": {},
    "keda": {"worker.autoscaling.engine": "keda"},
    "fixed workers": {"worker.autoscaling.engine": "none"},
    "web without a persistent spool": {"web.persistentSpool": False},
    "no ingress": {"ingress.enabled": False},
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_rendering_validates_strictly_against_the_kubernetes_schemas(
    overrides: dict[str, Any],
) -> None:
    for obj in objects(**overrides):
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: kubernetes-validate has no schema (checked below)
        validate(obj)


def test_the_validator_refuses_a_broken_manifest() -> None:
    # So a passing validation above means something.
    deployment = by_kind(objects())["Deployment/herald-worker"]
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    deployment = by_kind(objects())["Deployment/herald-worker"]
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"secret": {}}]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)  # strict: an unknown field is an error


def test_the_defaults_make_web_worker_service_budgets_autoscaler_and_tls_ingress() -> None:
    kinds = sorted(by_kind(objects()))
    assert kinds == [
        "Deployment/herald-worker", "HorizontalPodAutoscaler/herald-worker",
        "Ingress/herald", "PodDisruptionBudget/herald-web",
        "PodDisruptionBudget/herald-worker", "Service/herald", "StatefulSet/herald-web",
    ]
    ingress = by_kind(objects())["Ingress/herald"]
    assert ingress["spec"]["tls"] == [{"hosts": ["herald.example.com"],
                                       "secretName": "herald-tls"}]


def test_probes_use_the_apps_health_routes_and_readiness_survives_a_redis_outage() -> None:
    web = by_kind(objects())["StatefulSet/herald-web"]
    [container] = web["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz fails while Redis is down; readiness on it would drop every pod from the
    # Service just when they should be spooling deliveries.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    routes = (ROOT / "bot" / "app.py").read_text(encoding="utf-8")
    assert 'Route("/healthz"' in routes and 'Route("/readyz"' in routes


def test_credentials_come_from_a_secret_reference_never_from_values() -> None:
    for obj in objects():
        text = yaml.safe_dump(obj)
        assert "PRIVATE_KEY" not in text and "WEBHOOK_SECRET" not in text
    for name in ("StatefulSet/herald-web", "Deployment/herald-worker"):
        [container] = by_kind(objects())[name]["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "herald"}}]


def test_keda_scales_workers_on_heralds_queue_depth_metric_not_on_a_redis_list() -> None:
    scaled = by_kind(objects(**VARIANTS["keda"]))["ScaledObject/herald-worker"]
    [trigger] = scaled["spec"]["triggers"]
    # KEDA's redis scaler reads LLEN, and ARQ's queue is a sorted set.
    assert trigger["type"] == "prometheus"
    assert "herald_queue_depth" in trigger["metadata"]["query"]
    assert scaled["spec"]["scaleTargetRef"] == {"name": "herald-worker"}


def test_an_autoscaled_worker_deployment_leaves_replicas_to_the_autoscaler() -> None:
    assert "replicas" not in by_kind(objects())["Deployment/herald-worker"]["spec"]
    fixed = by_kind(objects(**VARIANTS["fixed workers"]))["Deployment/herald-worker"]
    assert fixed["spec"]["replicas"] == 2


def test_an_unknown_autoscaling_engine_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="hpa, keda or none"):
        objects(**{"worker.autoscaling.engine": "redis"})


def test_an_override_of_a_key_the_values_do_not_have_is_refused() -> None:
    with pytest.raises(KeyError, match=r"web\.replica"):
        generate.load(overrides={"web.replica": 3})


def _value_paths(node: Any, prefix: str = "") -> set[str]:
    paths = {prefix} if prefix else set()
    if isinstance(node, dict):
        for key, value in node.items():
            paths |= _value_paths(value, f"{prefix}.{key}" if prefix else key)
    return paths


def test_the_chart_templates_read_only_values_the_values_file_has() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    known = _value_paths(values)
    used: set[str] = set()
    for template in (CHART / "templates").iterdir():
        text = template.read_text(encoding="utf-8")
        used |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text))
        # `$web := .Values.web` and the like: `$web.replicas` is `web.replicas`.
        for alias, root in re.findall(r"\$(\w+) := \.Values\.([A-Za-z0-9_.]+)", text):
            used |= {f"{root}.{rest}" for rest in re.findall(rf"\${alias}\.([A-Za-z0-9_.]+)",
                                                             text)}
    assert used, "no template reads a value"
    assert sorted(used - known) == []


def test_the_chart_has_a_template_for_every_kind_the_generator_renders() -> None:
    templates = "\n".join(p.read_text(encoding="utf-8") for p in (CHART / "templates").iterdir())
    rendered = {o["kind"] for v in VARIANTS.values() for o in objects(**v)}
    for kind in rendered:
        assert re.search(rf"^kind: .*\b{kind}\b", templates, re.MULTILINE), kind
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2" and chart["name"] == "herald"
