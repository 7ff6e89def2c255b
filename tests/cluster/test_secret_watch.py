"""Secrets beyond TLS (issue 12): every Secret is watched, only the named ones' data is held.

Real watcher + real ObjectCache + the real kubernetes_asyncio client against the API test double. The
annotations are ingress-nginx's `auth-secret` and `proxy-ssl-secret` (docs/user-guide/nginx-configuration/
annotations.md, "Authentication" and "Backend Certificate Authentication"): a bare name is a Secret of the
Ingress's namespace, "namespace/name" names one explicitly.
"""

from __future__ import annotations

import base64
from typing import Any

from kubeapi import KubeApiServer
from proxy.kube.cache import CacheChange

from .objects import ingress, tls_secret
from .test_watch import calls
from .watching import Start, eventually

KINDS = ("Ingress", "Secret")
AUTH = "nginx.ingress.kubernetes.io/auth-secret"


def opaque(name: str, payload: str, namespace: str = "default") -> dict[str, Any]:
    return tls_secret(name, namespace, type_="Opaque", payload=base64.b64encode(payload.encode()).decode())


def annotated(name: str, annotations: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    obj = ingress(name, namespace)
    obj["metadata"]["annotations"] = annotations
    return obj


def held_bytes(running: Any) -> int:
    """The size of every Secret's data the cache holds."""
    return sum(len(value) for secret in running.cache.snapshot().secrets.values()
               for value in (secret.get("data") or {}).values())


async def test_an_unnamed_big_secret_is_not_held(kube_api: KubeApiServer, start: Start) -> None:
    release = "QUJD" * 250_000  # a Helm release Secret: 1 MB of data nothing routes with
    kube_api.create(tls_secret("sh.helm.release.v1.app.v1", type_="helm.sh/release.v1", payload=release))
    kube_api.create(opaque("htpasswd", "user:{PLAIN}pass"))
    kube_api.create(annotated("web", {AUTH: "htpasswd"}))
    running = await start(kinds=KINDS)
    await eventually(lambda: running.cache.get("Secret", "default", "htpasswd") is not None, "the named Secret")
    assert running.cache.get("Secret", "default", "sh.helm.release.v1.app.v1") is None
    assert ("default", "sh.helm.release.v1.app.v1") in running.cache.unheld_secrets()
    assert held_bytes(running) < 100
    # A change of it rebuilds nothing and still holds nothing.
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    kube_api.apply(tls_secret("sh.helm.release.v1.app.v1", type_="helm.sh/release.v1", payload="QUJE" * 250_000))
    kube_api.apply(opaque("htpasswd", "user:{PLAIN}other"))  # a marker: once it is in, the first one was seen
    await eventually(lambda: changes, "the named Secret's change")
    assert changes == [CacheChange(routes=True)]
    assert running.cache.get("Secret", "default", "sh.helm.release.v1.app.v1") is None


async def test_an_ingress_naming_an_existing_opaque_secret_picks_it_up(kube_api: KubeApiServer,
                                                                       start: Start) -> None:
    kube_api.create(opaque("htpasswd", "user:{PLAIN}pass"))
    kube_api.create(opaque("ca", "not named"))
    running = await start(kinds=KINDS)
    assert running.cache.get("Secret", "default", "htpasswd") is None
    assert calls(kube_api, "get", "secrets") == []
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    kube_api.create(annotated("web", {AUTH: "htpasswd", "nginx.ingress.kubernetes.io/auth-type": "basic"}))
    await eventually(lambda: running.cache.get("Secret", "default", "htpasswd") is not None, "the Secret read again")
    secret = running.cache.get("Secret", "default", "htpasswd")
    assert base64.b64decode(secret["data"]["x"]) == b"user:{PLAIN}pass"
    (get,) = calls(kube_api, "get", "secrets")
    assert (get.namespace, get.name) == ("default", "htpasswd")
    assert changes[-1] == CacheChange(routes=True)  # the Secret's arrival rebuilds
    # proxy-ssl-secret in namespace/name form, and a Secret created after the Ingress naming it.
    kube_api.create(annotated("tls", {"nginx.ingress.kubernetes.io/proxy-ssl-secret": "default/later"}))
    await eventually(lambda: running.cache.get("Ingress", "default", "tls") is not None)
    kube_api.create(opaque("later", "ca"))
    await eventually(lambda: running.cache.get("Secret", "default", "later") is not None, "a Secret created later")
    assert running.cache.get("Secret", "default", "ca") is None


async def test_a_named_secret_change_rebuilds_and_a_dropped_name_drops_its_data(kube_api: KubeApiServer,
                                                                                start: Start) -> None:
    kube_api.create(opaque("htpasswd", "user:{PLAIN}pass"))
    kube_api.create(annotated("web", {AUTH: "default/htpasswd"}))
    running = await start(kinds=KINDS)
    await eventually(lambda: running.cache.get("Secret", "default", "htpasswd") is not None)
    changes: list[CacheChange] = []
    running.cache.subscribe(changes.append)
    kube_api.apply(opaque("htpasswd", "user:{PLAIN}changed"))
    await eventually(lambda: changes, "the change")
    assert changes == [CacheChange(routes=True)]
    assert base64.b64decode(running.cache.get("Secret", "default", "htpasswd")["data"]["x"]) == b"user:{PLAIN}changed"
    kube_api.apply(ingress("web"))  # the annotation removed
    await eventually(lambda: running.cache.get("Secret", "default", "htpasswd") is None, "the data dropped")
    assert ("default", "htpasswd") in running.cache.unheld_secrets()
    # Named again: read again.
    before = len(calls(kube_api, "get", "secrets"))
    kube_api.apply(annotated("web", {AUTH: "htpasswd"}))
    await eventually(lambda: running.cache.get("Secret", "default", "htpasswd") is not None, "read again")
    assert len(calls(kube_api, "get", "secrets")) == before + 1


async def test_a_secret_of_another_namespace_is_not_read(kube_api: KubeApiServer, start: Start) -> None:
    """ingress-nginx refuses cross-namespace Secrets (allow-cross-namespace-resources is off by default)."""
    kube_api.create(opaque("htpasswd", "user:{PLAIN}pass", namespace="other"))
    kube_api.create(annotated("web", {AUTH: "other/htpasswd"}))
    running = await start(kinds=KINDS)
    await eventually(lambda: ("other", "htpasswd") in running.cache.unheld_secrets())
    assert running.cache.get("Secret", "other", "htpasswd") is None
    assert calls(kube_api, "get", "secrets") == []
