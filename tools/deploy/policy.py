"""Project rules for the deploy files that schema validation cannot express.

    python tools/deploy/policy.py compose RESOLVED.json     (output of compose-config)
    python tools/deploy/policy.py helm RENDERED.yaml [--replicas N] [--replication-factor N]
    python tools/deploy/policy.py otel deploy/compose/otel-collector.yaml
    python tools/deploy/policy.py dockerfile Dockerfile

Each prints what it checked and exits 1 listing every violation. Run by tools/deploy_check.sh
(with the workspace's Python: PyYAML is a dev dependency).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev group

SERVICES = ("intake", "manufacturing", "logistics", "release", "infusion", "projection")
GRPC_PORTS = {name: 50061 + i for i, name in enumerate(SERVICES)}
HEALTHCHECK = ["python", "-m", "v2v_platform.healthcheck"]
UID = 10001


class Violations(list[str]):
    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.append(message)


def _pinned(image: str) -> bool:
    """A tag (or digest) other than latest, with no unresolved variable."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest") and "$" not in image


# --- compose ----------------------------------------------------------------------------------


def check_compose(path: Path) -> Violations:
    project = json.loads(path.read_text())
    services: dict[str, Any] = project.get("services", {})
    problems = Violations()
    for name in (*SERVICES, "kafka", "postgres", "pki", "otel-collector", "jaeger"):
        problems.check(name in services, f"compose: service {name!r} is missing")
    for name, service in sorted(services.items()):
        image = service.get("image", "")
        problems.check(_pinned(image), f"compose: {name}: image {image!r} is not pinned")
        for port in service.get("ports", []):
            problems.check(
                port.get("host_ip") == "127.0.0.1",
                f"compose: {name}: port {port.get('published')} is published beyond 127.0.0.1",
            )
        for volume in service.get("volumes", []):
            if volume.get("type") == "bind":
                source = Path(volume.get("source", ""))
                problems.check(source.exists(), f"compose: {name}: bind source {source} missing")
    for name in SERVICES:
        service = services.get(name)
        if service is None:
            continue
        where = f"compose: {name}"
        problems.check(
            service.get("build", {}).get("args", {}).get("SERVICE") == name,
            f"{where}: build arg SERVICE must be {name!r}",
        )
        problems.check(service.get("user") == f"{UID}:{UID}", f"{where}: user must be {UID}")
        problems.check(service.get("read_only") is True, f"{where}: read_only must be true")
        problems.check("ALL" in service.get("cap_drop", []), f"{where}: cap_drop must have ALL")
        test = service.get("healthcheck", {}).get("test", [])
        problems.check(
            test[:1] == ["CMD"] and test[1:4] == HEALTHCHECK,
            f"{where}: healthcheck must be CMD python -m v2v_platform.healthcheck",
        )
        problems.check(
            f"127.0.0.1:{GRPC_PORTS[name]}" in test,
            f"{where}: healthcheck must probe 127.0.0.1:{GRPC_PORTS[name]}",
        )
        env = service.get("environment", {})
        problems.check(
            env.get("V2V_GRPC_ADDRESS") == f"0.0.0.0:{GRPC_PORTS[name]}",
            f"{where}: V2V_GRPC_ADDRESS must be 0.0.0.0:{GRPC_PORTS[name]}",
        )
        for variable in ("V2V_SITE_ID", "V2V_PKI_DIR", "V2V_KAFKA_BOOTSTRAP", "V2V_POSTGRES_DSN"):
            problems.check(bool(env.get(variable)), f"{where}: {variable} is not set")
        depends = service.get("depends_on", {})
        expected = {
            "pki": "service_completed_successfully",
            "kafka": "service_healthy",
            "postgres": "service_healthy",
        }
        for dependency, condition in expected.items():
            problems.check(
                depends.get(dependency, {}).get("condition") == condition,
                f"{where}: depends_on {dependency} must be condition {condition}",
            )
    for name in ("kafka", "postgres"):
        problems.check(
            bool(services.get(name, {}).get("healthcheck", {}).get("test")),
            f"compose: {name} has no healthcheck",
        )
    print(f"policy: compose: {len(services)} services checked")
    return problems


# --- helm -------------------------------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def _check_deployment(
    deployment: dict[str, Any], replicas: int | None, replication_factor: int | None
) -> Iterable[tuple[bool, str]]:
    name = deployment["metadata"]["name"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    security = pod.get("securityContext", {})
    yield security.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot must be true"
    seccomp = security.get("seccompProfile", {}).get("type")
    yield seccomp == "RuntimeDefault", f"{name}: pod seccompProfile must be RuntimeDefault"
    yield pod.get("automountServiceAccountToken") is False, f"{name}: SA token is mounted"
    if replicas is not None:
        yield spec.get("replicas") == replicas, f"{name}: replicas {spec.get('replicas')}"
    for container in pod["containers"]:
        where = f"{name}/{container['name']}"
        context = container.get("securityContext", {})
        yield context.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem writable"
        yield context.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
        yield context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL caps"
        yield context.get("privileged") is not True, f"{where}: privileged"
        yield _pinned(container["image"]), f"{where}: image {container['image']} not pinned"
        yield bool(container.get("resources", {}).get("requests")), f"{where}: no requests"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command", [])
            yield command[:3] == HEALTHCHECK, f"{where}: {probe} must exec the healthcheck"
        env = _env(container)
        for variable in ("V2V_SITE_ID", "V2V_PKI_DIR", "V2V_KAFKA_BOOTSTRAP", "V2V_GRPC_ADDRESS"):
            yield bool(env.get(variable)), f"{where}: {variable} is not set"
        dsn = env.get("V2V_POSTGRES_DSN")
        own_file = bool(env.get("V2V_SQLITE_PATH")) and bool(spec.get("volumeClaimTemplates"))
        from_secret = isinstance(dsn, dict) and "secretKeyRef" in dsn
        yield from_secret or (dsn is None and own_file), f"{where}: DSN not from a Secret"
        if replication_factor is not None:
            factor = env.get("V2V_TOPIC_REPLICATION_FACTOR")
            yield factor == str(replication_factor), f"{where}: replication factor {factor}"
        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        yield mounts.get("pki", {}).get("readOnly") is True, f"{where}: PKI not mounted read-only"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    yield _only_secrets(volumes.get("pki", {})), f"{name}: PKI volume is not a Secret"


def _component(workload: dict[str, Any]) -> str:
    return str(workload["metadata"]["labels"].get("app.kubernetes.io/component", "?"))


def _check_statefulset(
    statefulset: dict[str, Any], headless: set[str]
) -> Iterable[tuple[bool, str]]:
    """The projection's replicas: governed by a headless Service, each named by its pod (its
    consumer group and store, V2V_PROJECTION_REPLICA), replaced one by one."""
    name = statefulset["metadata"]["name"]
    spec = statefulset["spec"]
    yield spec.get("serviceName") in headless, f"{name}: serviceName is not a headless Service"
    strategy = spec.get("updateStrategy", {}).get("type", "RollingUpdate")
    yield strategy == "RollingUpdate", f"{name}: updateStrategy {strategy}"
    for container in spec["template"]["spec"]["containers"]:
        replica = _env(container).get("V2V_PROJECTION_REPLICA")
        field = isinstance(replica, dict) and replica.get("fieldRef", {}).get("fieldPath")
        yield field == "metadata.name", f"{name}: V2V_PROJECTION_REPLICA is not the pod name"


def _only_secrets(volume: dict[str, Any]) -> bool:
    """A Secret, or a projection of Secrets only (the PKI plus its revocation lists)."""
    if "secret" in volume:
        return True
    sources = volume.get("projected", {}).get("sources", [])
    return bool(sources) and all(set(source) == {"secret"} for source in sources)


def check_helm(path: Path, replicas: int | None, replication_factor: int | None) -> Violations:
    documents = _documents(path)
    problems = Violations()
    kinds: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
    # every service a Deployment but the projection: a StatefulSet of full read replicas (ADR 0011)
    workloads = kinds.get("Deployment", []) + kinds.get("StatefulSet", [])
    components = sorted(_component(w) for w in workloads)
    problems.check(components == sorted(SERVICES), f"helm: workloads {components}")
    stateful = sorted(_component(s) for s in kinds.get("StatefulSet", []))
    problems.check(stateful == ["projection"], f"helm: StatefulSets {stateful}, not [projection]")
    services = kinds.get("Service", [])
    headless = {s["metadata"]["name"] for s in services if s["spec"].get("clusterIP") == "None"}
    ordinary = [s for s in services if s["spec"].get("clusterIP") != "None"]
    problems.check(len(ordinary) == len(SERVICES), "helm: one Service each")
    for statefulset in kinds.get("StatefulSet", []):
        for ok, message in _check_statefulset(statefulset, headless):
            problems.check(ok, f"helm: {message}")
    if replicas is not None and replicas > 1:
        budgets = len(kinds.get("PodDisruptionBudget", []))
        problems.check(budgets == len(SERVICES), f"helm: {budgets} PodDisruptionBudgets")
    for workload in workloads:
        for ok, message in _check_deployment(workload, replicas, replication_factor):
            problems.check(ok, f"helm: {message}")
    summary = ", ".join(f"{len(v)} {k}" for k, v in sorted(kinds.items()))
    print(f"policy: helm: {path.name}: {summary}")
    return problems


# --- otel collector ---------------------------------------------------------------------------


def check_otel(path: Path) -> Violations:
    config = yaml.safe_load(path.read_text())
    problems = Violations()
    service = config.get("service", {})
    for extension in service.get("extensions", []):
        problems.check(
            extension in config.get("extensions", {}), f"otel: extension {extension} undefined"
        )
    pipelines = service.get("pipelines", {})
    problems.check("traces" in pipelines, "otel: no traces pipeline")
    for pipeline_name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section, []):
                problems.check(
                    component in config.get(section, {}),
                    f"otel: pipeline {pipeline_name}: {section[:-1]} {component} undefined",
                )
        problems.check(bool(pipeline.get("receivers")), f"otel: {pipeline_name}: no receiver")
        problems.check(bool(pipeline.get("exporters")), f"otel: {pipeline_name}: no exporter")
    print(f"policy: otel: {len(pipelines)} pipelines checked")
    return problems


# --- Dockerfile -------------------------------------------------------------------------------


def check_dockerfile(path: Path) -> Violations:
    lines = []  # logical lines: continuations joined, comments dropped
    current = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    problems = Violations()
    instructions = [[*line.split(None, 1), ""][:2] for line in lines if line]
    stages = [args for word, args in instructions if word.upper() == "FROM"]
    problems.check(len(stages) >= 2, "Dockerfile: must be multi-stage (builder + runtime)")
    final = [i for i, (word, _) in enumerate(instructions) if word.upper() == "FROM"][-1]
    runtime = instructions[final:]
    users = [args for word, args in runtime if word.upper() == "USER"]
    problems.check(
        bool(users) and users[-1].split(":")[0] == str(UID),
        f"Dockerfile: the runtime stage must end as USER {UID}",
    )
    entrypoints = [args for word, args in runtime if word.upper() == "ENTRYPOINT"]
    problems.check(
        len(entrypoints) == 1 and entrypoints[0].startswith("["),
        "Dockerfile: one exec-form (JSON) ENTRYPOINT in the runtime stage",
    )
    if entrypoints and entrypoints[0].startswith("["):
        problems.check(
            "python -m" in " ".join(json.loads(entrypoints[0])),
            "Dockerfile: ENTRYPOINT must run python -m v2v_<service>",
        )
    for word, args in instructions:
        if word.upper() == "CMD":
            problems.check(args.startswith("["), "Dockerfile: CMD must be exec form")
    text = "\n".join(lines)
    problems.check("pip install uv==0.13.9" in text, "Dockerfile: uv must be pinned to 0.13.9")
    problems.check("uv sync --frozen" in text, "Dockerfile: dependencies from uv.lock only")
    problems.check("tools/gen_proto.py" in text, "Dockerfile: must generate the protobuf code")
    problems.check(
        re.search(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text) is not None,
        "Dockerfile: base image must be a pinned python:3.11.x-slim",
    )
    print(f"policy: Dockerfile: {len(instructions)} instructions, {len(stages)} stages checked")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("compose").add_argument("path", type=Path)
    helm = sub.add_parser("helm")
    helm.add_argument("path", type=Path)
    helm.add_argument("--replicas", type=int)
    helm.add_argument("--replication-factor", type=int)
    sub.add_parser("otel").add_argument("path", type=Path)
    sub.add_parser("dockerfile").add_argument("path", type=Path)
    options = parser.parse_args()
    if options.what == "compose":
        problems = check_compose(options.path)
    elif options.what == "helm":
        problems = check_helm(options.path, options.replicas, options.replication_factor)
    elif options.what == "otel":
        problems = check_otel(options.path)
    else:
        problems = check_dockerfile(options.path)
    for problem in problems:
        print(f"  violation: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
