"""Which Secrets an Ingress names: read by the object cache (which Secrets to hold) and the builder alike.

A base module (it imports nothing of ours), so `kube/` and `routing/` agree on one answer:

- `spec.tls[].secretName` (TLS Secrets, in the Ingress's namespace);
- the annotations of `SECRET_ANNOTATIONS` (any Secret type), under either annotation prefix, as
  "namespace/name" or a bare name (the Ingress's namespace), as ingress-nginx reads `auth-secret`.
  A Secret in another namespace is not a reference: ingress-nginx refuses cross-namespace Secrets
  (`allow-cross-namespace-resources` is off by default), and holding one would let an Ingress author
  make the proxy read Secrets of namespaces they cannot read.

A new annotation naming a Secret is one more entry in `SECRET_ANNOTATIONS`. ConfigMaps an Ingress names
(`CONFIG_MAP_ANNOTATIONS`: custom-headers, auth-proxy-set-headers) follow the same rules: the cache keeps
their data (any other ConfigMap's is dropped on arrival) and the builder reads them; so does the ConfigMap
ingress-nginx's ConfigMap names in its key `proxy-set-headers` (`controller_config_map_refs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]

ANNOTATION_PREFIXES = ("pyngress.dev/", "nginx.ingress.kubernetes.io/")
# Annotations whose value names a Secret the builder reads.
SECRET_ANNOTATIONS = ("auth-secret", "auth-tls-secret", "proxy-ssl-secret")
# Annotations whose value names a ConfigMap the builder reads (its whole data).
CONFIG_MAP_ANNOTATIONS = ("custom-headers", "auth-proxy-set-headers")
# The key of ingress-nginx's ConfigMap (--configmap) naming a ConfigMap of headers for every upstream request.
PROXY_SET_HEADERS = "proxy-set-headers"


def secret_key(value: str, namespace: str) -> Key | None:
    """(namespace, name) of "namespace/name" or of a bare "name" (in `namespace`); None when it is neither."""
    text = value.strip()
    ref_namespace, sep, name = text.partition("/")
    if not sep:
        ref_namespace, name = namespace, text
    if not ref_namespace or not name or "/" in name:
        return None
    return ref_namespace, name


def tls_secret_refs(ingress: Mapping[str, Any]) -> set[Key]:
    """The Secrets an Ingress's spec.tls names."""
    spec = ingress.get("spec")
    tls = spec.get("tls") if isinstance(spec, dict) else None
    if not isinstance(tls, list):
        return set()
    namespace = _namespace(ingress)
    found = set()
    for entry in tls:
        if isinstance(entry, dict):
            secret = entry.get("secretName")
            if isinstance(secret, str) and secret:
                found.add((namespace, secret))
    return found


def annotation_secret_refs(ingress: Mapping[str, Any], names: tuple[str, ...] = SECRET_ANNOTATIONS) -> set[Key]:
    """The Secrets an Ingress's annotations name (both prefixes counted: either may be the one read);
    `names`: the annotations read (CONFIG_MAP_ANNOTATIONS for the ConfigMaps it names)."""
    meta = ingress.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict) or not annotations:
        return set()
    namespace = _namespace(ingress)
    found = set()
    for prefix in ANNOTATION_PREFIXES:
        for name in names:
            value = annotations.get(prefix + name)
            if isinstance(value, str):
                key = secret_key(value, namespace)
                if key is not None and key[0] == namespace:
                    found.add(key)
    return found


def ingress_secret_refs(ingress: Mapping[str, Any]) -> set[Key]:
    """Every Secret an Ingress names: its TLS Secrets and those of its annotations."""
    return tls_secret_refs(ingress) | annotation_secret_refs(ingress)


def ingress_config_map_refs(ingress: Mapping[str, Any]) -> set[Key]:
    """The ConfigMaps an Ingress's annotations name (in its own namespace)."""
    return annotation_secret_refs(ingress, CONFIG_MAP_ANNOTATIONS)


def controller_config_map_refs(config_map: Mapping[str, Any]) -> set[Key]:
    """The ConfigMaps ingress-nginx's ConfigMap (--configmap) names: `proxy-set-headers` ("namespace/name", or a
    bare name in its own namespace). Any namespace: the controller's ConfigMap is the administrator's."""
    data = config_map.get("data")
    value = data.get(PROXY_SET_HEADERS) if isinstance(data, dict) else None
    if not isinstance(value, str):
        return set()
    key = secret_key(value, _namespace(config_map))
    return {key} if key is not None else set()


def _namespace(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    return namespace if isinstance(namespace, str) else ""


__all__ = ["ANNOTATION_PREFIXES", "CONFIG_MAP_ANNOTATIONS", "PROXY_SET_HEADERS", "SECRET_ANNOTATIONS",
           "annotation_secret_refs", "controller_config_map_refs", "ingress_config_map_refs", "ingress_secret_refs",
           "secret_key", "tls_secret_refs"]
