"""Kubernetes objects as the API server stores them, for seeding the emulator."""

from __future__ import annotations

from typing import Any


def ingress(name: str, namespace: str = "default", *, host: str = "web.test", service: str = "web",
            port: int = 80, class_name: str = "pyngress", tls_secret: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ingressClassName": class_name,
        "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": service, "port": {"number": port}}}}]}}],
    }
    if tls_secret:
        spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
    return {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def ingress_class(name: str = "pyngress", controller: str = "pyngress.dev/ingress-controller") -> dict[str, Any]:
    return {"kind": "IngressClass", "apiVersion": "networking.k8s.io/v1", "metadata": {"name": name},
            "spec": {"controller": controller}}


def service(name: str, namespace: str = "default", *, port: int = 80, target_port: int = 8080,
            type_: str = "ClusterIP") -> dict[str, Any]:
    return {"kind": "Service", "apiVersion": "v1", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": type_, "ports": [{"port": port, "targetPort": target_port, "protocol": "TCP"}]}}


def endpoint_slice(service_name: str, namespace: str = "default", *, addresses: list[str], port: int = 8080,
                   suffix: str = "abcde") -> dict[str, Any]:
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            "ports": [{"name": "", "port": port, "protocol": "TCP"}]}


def endpoints(service_name: str, namespace: str = "default", *, addresses: list[str],
              port: int = 8080) -> dict[str, Any]:
    return {"kind": "Endpoints", "apiVersion": "v1", "metadata": {"name": service_name, "namespace": namespace},
            "subsets": [{"addresses": [{"ip": a} for a in addresses], "ports": [{"port": port}]}]}


def tls_secret(name: str, namespace: str = "default", *, type_: str = "kubernetes.io/tls",
               payload: str = "") -> dict[str, Any]:
    if type_ == "kubernetes.io/tls":
        data = {"tls.crt": payload or "Y2VydA==", "tls.key": "a2V5"}
    else:
        data = {"x": payload or "eA=="}
    return {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "namespace": namespace},
            "type": type_, "data": data}
