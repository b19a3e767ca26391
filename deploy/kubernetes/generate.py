"""Render deploy/kubernetes/herald.yaml from the Helm chart's values, without helm.

No helm binary installs on the machines Herald is built on, and no PyPI package renders a
Helm chart offline, so the chart (deploy/helm/herald) and these plain manifests are two
renderings of one values file: this script builds the same objects as the chart's
templates from deploy/helm/herald/values.yaml. CI checks the file is current
(`--check`) and validates it with kubernetes-validate (tests/deploy/).

    python deploy/kubernetes/generate.py            # rewrite herald.yaml
    python deploy/kubernetes/generate.py --check    # exit 1 if it is stale
    python deploy/kubernetes/generate.py --values my-values.yaml --output -
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
VALUES = HERE.parent / "helm" / "herald" / "values.yaml"
OUTPUT = HERE / "herald.yaml"
NAME = "herald"
HEADER = """\
# Herald on Kubernetes, written by deploy/kubernetes/generate.py from
# deploy/helm/herald/values.yaml: edit the values (or use the chart), not this file.
# Before applying: create the Secret `{secret}` with Herald's variables (HERALD_REDIS_URL,
# the provider credentials and webhook secrets; docs/deploy.md) and the TLS Secret
# `{tls}` for {host}.
"""

Obj = dict[str, Any]


def labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": component}


def meta(name: str, component: str) -> Obj:
    return {"name": name, "labels": {**labels(component), "app.kubernetes.io/part-of": NAME}}


def env_list(values: Obj) -> list[Obj]:
    return [{"name": key, "value": str(value)} for key, value in sorted(values["env"].items())]


def image(values: Obj) -> str:
    return f"{values['image']['repository']}:{values['image']['tag']}"


def web_pod(values: Obj) -> Obj:
    web = values["web"]
    container: Obj = {
        "name": "web",
        "image": image(values),
        "imagePullPolicy": values["image"]["pullPolicy"],
        "args": ["herald", "web", "--host", "0.0.0.0", "--port", "8000"],  # noqa: S104
        "ports": [{"name": "http", "containerPort": 8000}],
        "envFrom": [{"secretRef": {"name": values["secretName"]}}],
        "env": [{"name": "HERALD_STATE_DIR", "value": "/var/lib/herald"}, *env_list(values)],
        "volumeMounts": [{"name": "spool", "mountPath": "/var/lib/herald"}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": web["readinessPath"], "port": "http"},
                           "periodSeconds": 5},
        "resources": web["resources"],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    spec: Obj = {
        "terminationGracePeriodSeconds": web["terminationGracePeriodSeconds"],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "containers": [container],
    }
    if not web["persistentSpool"]:
        spec["volumes"] = [{"name": "spool", "emptyDir": {}}]
    annotations = {}
    if values["metrics"]["prometheusAnnotations"]:
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                       "prometheus.io/path": "/metrics"}
    template: Obj = {"metadata": {"labels": labels("web")}, "spec": spec}
    if annotations:
        template["metadata"]["annotations"] = annotations
    return template


def web(values: Obj) -> Obj:
    web = values["web"]
    spec: Obj = {
        "replicas": web["replicas"],
        "selector": {"matchLabels": labels("web")},
        "template": web_pod(values),
    }
    if web["persistentSpool"]:
        spec["serviceName"] = NAME
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "spool"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": web["spoolSize"]}}},
        }]
        kind = "StatefulSet"
    else:
        kind = "Deployment"
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta(f"{NAME}-web", "web"),
            "spec": spec}


def worker(values: Obj) -> Obj:
    worker = values["worker"]
    spec: Obj = {
        "selector": {"matchLabels": labels("worker")},
        "template": {
            "metadata": {"labels": labels("worker")},
            "spec": {
                "terminationGracePeriodSeconds": worker["terminationGracePeriodSeconds"],
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                "containers": [{
                    "name": "worker",
                    "image": image(values),
                    "imagePullPolicy": values["image"]["pullPolicy"],
                    "args": ["herald", "worker"],
                    "envFrom": [{"secretRef": {"name": values["secretName"]}}],
                    "env": env_list(values),
                    "resources": worker["resources"],
                    "securityContext": {"allowPrivilegeEscalation": False},
                }],
            },
        },
    }
    if worker["autoscaling"]["engine"] == "none":
        spec = {"replicas": worker["replicas"], **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta(f"{NAME}-worker", "worker"), "spec": spec}


def service(values: Obj) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": meta(NAME, "web"),
        "spec": {"selector": labels("web"),
                 "ports": [{"name": "http", "port": values["service"]["port"],
                            "targetPort": "http"}]},
    }


def ingress(values: Obj) -> Obj:
    ing = values["ingress"]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {**meta(NAME, "web"), "annotations": dict(ing["annotations"])},
        "spec": {
            "ingressClassName": ing["className"],
            "tls": [{"hosts": [ing["host"]], "secretName": ing["tlsSecretName"]}],
            "rules": [{"host": ing["host"], "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": NAME,
                                        "port": {"number": values["service"]["port"]}}},
            }]}}],
        },
    }


def budgets(values: Obj) -> list[Obj]:
    return [
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": meta(f"{NAME}-web", "web"),
         "spec": {"minAvailable": values["web"]["pdb"]["minAvailable"],
                  "selector": {"matchLabels": labels("web")}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": meta(f"{NAME}-worker", "worker"),
         "spec": {"maxUnavailable": values["worker"]["pdb"]["maxUnavailable"],
                  "selector": {"matchLabels": labels("worker")}}},
    ]


def autoscaler(values: Obj) -> Obj | None:
    scaling = values["worker"]["autoscaling"]
    engine = scaling["engine"]
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{NAME}-worker"}
    if engine == "hpa":
        return {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": meta(f"{NAME}-worker", "worker"),
            "spec": {
                "scaleTargetRef": target,
                "minReplicas": scaling["minReplicas"],
                "maxReplicas": scaling["maxReplicas"],
                "metrics": [{"type": "External", "external": {
                    "metric": {"name": "herald_queue_depth"},
                    "target": {"type": "AverageValue",
                               "averageValue": str(scaling["queueDepthPerWorker"])},
                }}],
            },
        }
    if engine == "keda":
        return {
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": meta(f"{NAME}-worker", "worker"),
            "spec": {
                "scaleTargetRef": {"name": f"{NAME}-worker"},
                "minReplicaCount": scaling["minReplicas"],
                "maxReplicaCount": scaling["maxReplicas"],
                "triggers": [{"type": "prometheus", "metadata": {
                    "serverAddress": scaling["prometheusAddress"],
                    "query": scaling["query"],
                    "threshold": str(scaling["queueDepthPerWorker"]),
                }}],
            },
        }
    if engine == "none":
        return None
    raise ValueError(f"worker.autoscaling.engine must be hpa, keda or none, not {engine!r}")


def render(values: Obj) -> list[Obj]:
    """The objects, in apply order."""
    objects = [service(values), web(values), worker(values), *budgets(values)]
    scaler = autoscaler(values)
    if scaler is not None:
        objects.append(scaler)
    if values["ingress"]["enabled"]:
        objects.append(ingress(values))
    return objects


def load(path: Path = VALUES, overrides: dict[str, Any] | None = None) -> Obj:
    """The values at `path`, with `overrides` (dotted keys: `worker.autoscaling.engine`)."""
    values: Obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    values = copy.deepcopy(values)
    for dotted, value in (overrides or {}).items():
        *parents, last = dotted.split(".")
        node = values
        for part in parents:
            node = node[part]
        if last not in node:
            raise KeyError(f"{dotted} is not a key of {path}")
        node[last] = value
    return values


def to_yaml(values: Obj) -> str:
    header = HEADER.format(secret=values["secretName"], tls=values["ingress"]["tlsSecretName"],
                           host=values["ingress"]["host"])
    documents = [yaml.safe_dump(obj, sort_keys=False, width=100) for obj in render(values)]
    return header + "---\n" + "---\n".join(documents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--values", type=Path, default=VALUES)
    parser.add_argument("--output", default=str(OUTPUT), help="a path, or - for stdout")
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    text = to_yaml(load(args.values))
    if args.check:
        current = Path(args.output).read_text(encoding="utf-8") if args.output != "-" else ""
        if current != text:
            print(f"{args.output} is stale: run python deploy/kubernetes/generate.py",
                  file=sys.stderr)
            return 1
        return 0
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
