"""deploy/ parses, hangs together, and its RBAC grants exactly the API calls the code declares.

deploy/base/ holds the objects; deploy/ (LoadBalancer) and deploy/nodeport/ are the two ways to
apply them. Where kubectl is installed, both are rendered with its built-in kustomize.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.kube.client import CLUSTER, POD_NAMESPACE, ApiCall
from proxy.settings import CONTROLLER_NAME, Settings

from .rbac import declared_api_calls

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "base"
NAMESPACE = "pyngress"
KUBECTL = shutil.which("kubectl")


def load() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append(doc)
    return docs


DOCS = load()
CRDS = [yaml.safe_load(path.read_text()) for path in sorted((DEPLOY / "crds").glob("*.yaml"))
        if path.name != "kustomization.yaml"]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCS if d["kind"] == kind]


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    granted = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    granted.add((group, resource, verb))
    return granted


def bound_roles(binding_kind: str, role_kind: str, namespace: str | None) -> list[dict[str, Any]]:
    """Roles of `role_kind` bound to the Deployment's ServiceAccount by bindings of `binding_kind`."""
    account = deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    roles = []
    for binding in of_kind(binding_kind):
        if namespace is not None and binding["metadata"].get("namespace") != namespace:
            continue
        subjects = binding["subjects"]
        if any(s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == NAMESPACE
               for s in subjects):
            assert binding["roleRef"]["kind"] == role_kind
            role = one(role_kind, binding["roleRef"]["name"])
            if namespace is not None:
                assert role["metadata"]["namespace"] == namespace
            roles.append(role)
    return roles


def deployment() -> dict[str, Any]:
    return one("Deployment", "pyngress")


def container() -> dict[str, Any]:
    (found,) = deployment()["spec"]["template"]["spec"]["containers"]
    return found


def test_every_manifest_is_a_named_object_in_our_namespace() -> None:
    assert DOCS
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass"}
    for doc in DOCS:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"], doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
    one("Namespace", NAMESPACE)
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"] == ["crds", "base"]
    assert yaml.safe_load((DEPLOY / "nodeport" / "kustomization.yaml").read_text())["resources"] == [
        "../crds", "../base"]
    listed = yaml.safe_load((DEPLOY / "crds" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in (DEPLOY / "crds").glob("*.yaml") if p.name != "kustomization.yaml")


def test_rbac_covers_every_api_call_the_code_makes() -> None:
    declared = declared_api_calls()
    assert ApiCall("networking.k8s.io", "ingresses", "watch", CLUSTER) in declared
    cluster = set().union(*(grants(r["rules"]) for r in bound_roles("ClusterRoleBinding", "ClusterRole", None)))
    local = set().union(*(grants(r["rules"]) for r in bound_roles("RoleBinding", "Role", NAMESPACE)))
    missing = sorted(c for c in declared
                     if (c.group, c.resource, c.verb) not in (cluster if c.scope == CLUSTER else cluster | local))
    assert not missing, f"RBAC does not grant: {missing}"


def test_rbac_reads_the_gateway_api_and_namespaces_and_writes_only_gateway_api_status() -> None:
    declared = declared_api_calls()
    for resource in ("gatewayclasses", "gateways", "httproutes", "referencegrants"):
        for verb in ("list", "watch"):
            assert ApiCall("gateway.networking.k8s.io", resource, verb, CLUSTER) in declared
    assert {ApiCall("", "namespaces", "list", CLUSTER), ApiCall("", "namespaces", "watch", CLUSTER)} <= declared
    # Discovery (/apis/...) is a non-resource URL the default system:discovery role grants: no rule for it.
    for role in of_kind("ClusterRole") + of_kind("Role"):
        for rule in role["rules"]:
            assert "nonResourceURLs" not in rule, rule
    granted = set().union(*(grants(r["rules"]) for r in of_kind("ClusterRole")))
    # Status is read and written back whole (GET + PUT on /status), never the objects themselves.
    status = {("gateway.networking.k8s.io", f"{resource}/status", verb)
              for resource in ("gatewayclasses", "gateways", "httproutes", "tlsroutes", "grpcroutes",
                               "backendtlspolicies")
              for verb in ("get", "update")}
    assert {(g, r, v) for g, r, v in granted if g == "gateway.networking.k8s.io"} == {
        ("gateway.networking.k8s.io", resource, verb)
        for resource in ("gatewayclasses", "gateways", "httproutes", "referencegrants", "tlsroutes", "grpcroutes",
                         "backendtlspolicies")
        for verb in ("list", "watch")} | status
    assert {(r, v) for g, r, v in granted if g == "" and r.startswith("namespaces")} == {
        ("namespaces", "list"), ("namespaces", "watch")}


def test_rbac_reads_traffic_policies_and_ca_configmaps_and_writes_only_our_policy_status() -> None:
    declared = declared_api_calls()
    granted = set().union(*(grants(r["rules"]) for r in of_kind("ClusterRole")))
    assert {(g, r, v) for g, r, v in granted if g == "pyngress.dev"} == {
        ("pyngress.dev", "backendtrafficpolicies", "list"), ("pyngress.dev", "backendtrafficpolicies", "watch"),
        ("pyngress.dev", "backendtrafficpolicies/status", "get"),
        ("pyngress.dev", "backendtrafficpolicies/status", "update")}
    assert {ApiCall("gateway.networking.k8s.io", "backendtlspolicies", verb, CLUSTER) for verb in ("list", "watch")} \
        <= declared
    # ConfigMaps (CA bundles for BackendTLSPolicy, those Ingresses name) are listed and watched, and read one by
    # one when an Ingress starts naming one whose data was dropped; never written.
    assert {(r, v) for g, r, v in granted if g == "" and r == "configmaps"} == {
        ("configmaps", "get"), ("configmaps", "list"), ("configmaps", "watch")}


def test_rbac_grants_nothing_the_code_does_not_use() -> None:
    declared = declared_api_calls()
    cluster_needed = {(c.group, c.resource, c.verb) for c in declared if c.scope == CLUSTER}
    local_needed = {(c.group, c.resource, c.verb) for c in declared if c.scope == POD_NAMESPACE}
    for role in of_kind("ClusterRole") + of_kind("Role"):
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    cluster = set().union(*(grants(r["rules"]) for r in of_kind("ClusterRole")))
    local = set().union(*(grants(r["rules"]) for r in of_kind("Role")))
    assert cluster - cluster_needed == set(), "ClusterRole grants unused or namespace-only calls"
    assert local - local_needed == set(), "Role grants unused calls"
    for role in of_kind("Role"):
        for rule in role["rules"]:
            if "resourceNames" in rule:
                assert Settings().election_id in rule["resourceNames"]


def test_ingress_class_names_our_controller() -> None:
    assert one("IngressClass", Settings().ingress_class)["spec"]["controller"] == CONTROLLER_NAME


def test_deployment_is_highly_available_probed_and_locked_down() -> None:
    spec = deployment()["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    main = container()
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert main["resources"]["requests"]["cpu"] and main["resources"]["requests"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    defaults = Settings()
    assert ports == {"http": defaults.http_port, "https": defaults.https_port, "admin": defaults.admin_port}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    pre_stop = main["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and float(pre_stop[1]) > 0
    grace = next(float(a.split("=", 1)[1]) for a in main["args"] if a.startswith("--shutdown-grace-period="))
    assert pod["terminationGracePeriodSeconds"] > grace + float(pre_stop[1])
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in main["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    mounts = {m["mountPath"] for m in main["volumeMounts"]}
    assert "/tmp" in mounts  # the only writable place with a read-only root


def test_deployment_args_are_valid_flags_and_publish_an_existing_service() -> None:
    cli = pytest.importorskip("proxy.cli")
    args = container()["args"]
    parsed = cli.build_parser().parse_args(args)
    assert parsed.manifests == []  # cluster mode
    namespace, name = parsed.publish_service.split("/")
    published = one("Service", name)
    assert published["metadata"]["namespace"] == namespace
    assert published["spec"]["type"] == "LoadBalancer"


def test_services_reach_the_pods() -> None:
    (service,) = of_kind("Service")
    assert service["spec"]["type"] == "LoadBalancer"
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"] for p in container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http", "https"} <= container_ports


def arg(name: str) -> str:
    """The value of one `--name=value` argument of the Deployment's container."""
    (value,) = [a.split("=", 1)[1] for a in container()["args"] if a.startswith(f"--{name}=")]
    return value


def test_flags_match_the_objects_they_name() -> None:
    # The Lease the elector uses is the one the Role lets it update.
    (lease_rule,) = [r for r in one("Role", "pyngress")["rules"] if "resourceNames" in r]
    assert lease_rule["resourceNames"] == [arg("election-id")]
    # The class the proxy serves exists and names the controller the proxy answers to.
    ingress_class = one("IngressClass", arg("ingress-class"))
    assert ingress_class["spec"]["controller"] == CONTROLLER_NAME
    assert not any(a.startswith("--controller-class") for a in container()["args"])


def test_nodeport_overlay_patches_only_the_service_type_and_ports() -> None:
    patch = yaml.safe_load((DEPLOY / "nodeport" / "service-nodeport.yaml").read_text())
    base = one("Service", patch["metadata"]["name"])
    assert patch["metadata"]["namespace"] == base["metadata"]["namespace"]
    assert patch["spec"]["type"] == "NodePort"
    by_port = {p["port"]: p for p in base["spec"]["ports"]}
    for port in patch["spec"]["ports"]:
        # kustomize merges Service ports on (port, protocol): both must match the base's entry.
        assert (port["port"], port["protocol"]) == (by_port[port["port"]]["port"], by_port[port["port"]]["protocol"])
        assert port["name"] == by_port[port["port"]]["name"] and 30000 <= port["nodePort"] <= 32767


def kubectl_minor(program: str) -> int | None:
    """kubectl's client minor version, None if it does not say."""
    done = subprocess.run([program, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60,
                          check=False)
    try:
        return int(json.loads(done.stdout)["clientVersion"]["minor"].rstrip("+"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def kustomize(path: Path) -> list[dict[str, Any]]:
    rendered = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60,
                              check=True).stdout  # type: ignore[list-item]
    return [doc for doc in yaml.safe_load_all(rendered) if doc is not None]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_both_ways_to_apply_render_the_base() -> None:
    assert KUBECTL is not None
    minor = kubectl_minor(KUBECTL)
    if minor is None or minor < 21:
        # Debian's kubernetes-client is kubectl 1.20: its kustomize v2.0.3 reads neither a directory in
        # `resources` nor `patches`, both of which `kubectl apply -k` has accepted since 1.21 (kustomize v4).
        pytest.skip(f"{KUBECTL} is kubectl 1.{minor}; rendering deploy/ needs 1.21 or later (kustomize v4)")
    def key(doc: dict[str, Any]) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    default = {key(d): d for d in kustomize(DEPLOY)}
    assert default == {key(d): d for d in DOCS + CRDS}
    nodeport = {key(d): d for d in kustomize(DEPLOY / "nodeport")}
    assert nodeport.keys() == default.keys()
    assert {k: d for k, d in nodeport.items() if k != ("Service", "pyngress")} == {
        k: d for k, d in default.items() if k != ("Service", "pyngress")}
    service = nodeport[("Service", "pyngress")]["spec"]
    assert service["type"] == "NodePort" and service["externalTrafficPolicy"] == "Cluster"
    assert {(p["name"], p["targetPort"], p["nodePort"]) for p in service["ports"]} == {
        ("http", "http", 30080), ("https", "https", 30443)}
