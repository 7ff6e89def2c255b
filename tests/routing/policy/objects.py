"""Constructors for traffic policy objects: our BackendTrafficPolicy, the Gateway API's BackendTLSPolicy and
the ConfigMaps holding CA bundles, shaped like `kubectl get -o yaml` output (parsed)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

GATEWAY_GROUP = "gateway.networking.k8s.io"
GROUPS = {"Service": "", "Ingress": "networking.k8s.io", "HTTPRoute": GATEWAY_GROUP, "Gateway": GATEWAY_GROUP}
STAMP = "2024-01-01T00:00:00Z"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def target(kind: str, name: str, section: str | None = None, *, group: str | None = None) -> Obj:
    ref: Obj = {"group": GROUPS.get(kind, "") if group is None else group, "kind": kind, "name": name}
    if section is not None:
        ref["sectionName"] = section
    return ref


def _metadata(name: str, namespace: str, created: str | None, generation: int) -> Obj:
    metadata: Obj = {"name": name, "namespace": namespace, "generation": generation, "resourceVersion": "1",
                     "uid": f"uid-{namespace}-{name}"}
    if created is not None:
        metadata["creationTimestamp"] = created
    return metadata


def traffic_policy(name: str, *targets: Obj, namespace: str = "default", created: str | None = STAMP,
                   generation: int = 1, **spec: Any) -> Obj:
    return {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": _metadata(name, namespace, created, generation),
            "spec": {"targetRefs": list(targets), **spec}}


def tls_policy(name: str, *services: str, hostname: str = "web.internal", namespace: str = "default",
               ca: list[str] | None = None, system: bool = False, created: str | None = STAMP,
               alt_names: list[Obj] | None = None) -> Obj:
    validation: Obj = {"hostname": hostname}
    if system:
        validation["wellKnownCACertificates"] = "System"
    if ca is not None:
        validation["caCertificateRefs"] = [{"group": "", "kind": "ConfigMap", "name": item} for item in ca]
    if alt_names is not None:
        validation["subjectAltNames"] = alt_names
    return {"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "BackendTLSPolicy",
            "metadata": _metadata(name, namespace, created, 1),
            "spec": {"targetRefs": [target("Service", service) for service in services], "validation": validation}}


def config_map(name: str, *, namespace: str = "default", pem: str = CA_PEM) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(name, namespace, STAMP, 1),
            "data": {"ca.crt": pem}}
