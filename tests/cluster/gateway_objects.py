"""Gateway API objects and Namespaces as the API server stores them, for seeding the emulator."""

from __future__ import annotations

from typing import Any

GROUP = "gateway.networking.k8s.io"


def gateway_class(name: str = "pyngress", controller: str = "pyngress.dev/gateway-controller") -> dict[str, Any]:
    return {"kind": "GatewayClass", "apiVersion": f"{GROUP}/v1", "metadata": {"name": name},
            "spec": {"controllerName": controller}}


def gateway(name: str, namespace: str = "infra", *, certificate: str = "", certificate_namespace: str = "",
            class_name: str = "pyngress") -> dict[str, Any]:
    listeners: list[dict[str, Any]] = [{"name": "http", "port": 80, "protocol": "HTTP",
                                        "allowedRoutes": {"namespaces": {"from": "All"}}}]
    if certificate:
        ref: dict[str, Any] = {"group": "", "kind": "Secret", "name": certificate}
        if certificate_namespace:
            ref["namespace"] = certificate_namespace
        listeners.append({"name": "https", "port": 443, "protocol": "HTTPS",
                          "tls": {"mode": "Terminate", "certificateRefs": [ref]}})
    return {"kind": "Gateway", "apiVersion": f"{GROUP}/v1", "metadata": {"name": name, "namespace": namespace},
            "spec": {"gatewayClassName": class_name, "listeners": listeners}}


def http_route(name: str, namespace: str = "default", *, gateway: str = "edge", gateway_namespace: str = "infra",
               hostname: str = "gw.test", service: str = "web", port: int = 80) -> dict[str, Any]:
    return {"kind": "HTTPRoute", "apiVersion": f"{GROUP}/v1", "metadata": {"name": name, "namespace": namespace},
            "spec": {"parentRefs": [{"name": gateway, "namespace": gateway_namespace}], "hostnames": [hostname],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "backendRefs": [{"name": service, "port": port}]}]}}


def reference_grant(name: str, namespace: str = "default", *, version: str = "v1") -> dict[str, Any]:
    return {"kind": "ReferenceGrant", "apiVersion": f"{GROUP}/{version}",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "infra"}],
                     "to": [{"group": "", "kind": "Service"}]}}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name, "labels": dict(labels)}}
