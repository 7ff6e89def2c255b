"""The real process in cluster mode follows every kind it watches: Ingresses, Services,
EndpointSlices and Secrets created, changed and deleted at the API show up in routing (or, for
Secrets, in what the process receives and rebuilds), and a missing Service becomes a Warning
Event on the Ingress that names it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

from e2e_harness import INGRESS_CLASS, eventually, ingress, scrape, service

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the emulator package

from kubeapi import KubeApiServer

HOST = "shop.example.test"


def create_all(api: KubeApiServer, objects: list[dict]) -> None:
    for obj in objects:
        api.create(obj)


async def answers(proc, path: str, expected: int, pod: str | None = None, *, host: str = HOST) -> bool:
    status, body = await proc.request(path, host=host)
    return status == expected and (pod is None or body["pod"] == pod)


async def test_routing_follows_ingresses_services_and_endpoint_slices(kube_api, cluster, echo_pods) -> None:
    api = kube_api
    web_1 = await echo_pods.start("web-1", "127.0.0.21")
    web_2 = await echo_pods.start("web-2", "127.0.0.22", web_1.port)
    api_pod = await echo_pods.start("api-1", "127.0.0.23")
    api.create(INGRESS_CLASS)
    create_all(api, service("web", namespace="shop", pods=[web_1]))
    shop = ingress("shop", namespace="shop", host=HOST, paths=[("/", "Prefix", "web", 80)])
    api.create(shop)
    proc = await cluster.start()
    assert await answers(proc, "/", 200, "web-1")

    # Ingress changed: a new path to a Service that does not exist yet -> 503 and a Warning Event.
    shop = copy.deepcopy(shop)
    shop["spec"]["rules"][0]["http"]["paths"].append(
        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}})
    api.apply(shop)
    await eventually(lambda: answers(proc, "/api/v1", 503))
    assert await answers(proc, "/", 200, "web-1")

    def warning_event() -> list[dict]:
        return [e for e in api.objects("Event", "shop")
                if (e["involvedObject"]["kind"], e["involvedObject"]["name"]) == ("Ingress", "shop")
                and e["type"] == "Warning" and "api" in e["message"]]

    (event,) = await eventually(warning_event)
    assert event["reason"] == "ConfigurationWarning" and "not found" in event["message"]
    assert event["involvedObject"]["uid"] == api.get("Ingress", "shop", "shop")["metadata"]["uid"]

    # Service (and its slice) created -> the new path routes.
    create_all(api, service("api", namespace="shop", pods=[api_pod]))
    await eventually(lambda: answers(proc, "/api/v1", 200, "api-1"))

    # EndpointSlice changed: web-1 replaced by web-2, then the slice deleted (-> 503), then back.
    web_slice = service("web", namespace="shop", pods=[web_2])[1]
    api.apply(web_slice)
    await eventually(lambda: answers(proc, "/", 200, "web-2"))
    api.delete("EndpointSlice", "shop", web_slice["metadata"]["name"])
    await eventually(lambda: answers(proc, "/", 503))
    api.create(service("web", namespace="shop", pods=[web_1])[1])
    await eventually(lambda: answers(proc, "/", 200, "web-1"))

    # Service changed: its port moves off the number the Ingress names (-> 503), then back.
    web_service = api.get("Service", "shop", "web")
    web_service["spec"]["ports"][0]["port"] = 8081
    api.apply(web_service)
    await eventually(lambda: answers(proc, "/", 503))
    web_service["spec"]["ports"][0]["port"] = 80
    api.apply(web_service)
    await eventually(lambda: answers(proc, "/", 200, "web-1"))

    # Service deleted -> 503 (the Ingress stays); Ingress deleted -> 404.
    api.delete("Service", "shop", "api")
    await eventually(lambda: answers(proc, "/api/v1", 503))
    api.delete("Ingress", "shop", "shop")
    await eventually(lambda: answers(proc, "/", 404))
    assert await proc.admin_get("/readyz") == (200, "ok")


async def test_tls_secrets_are_streamed_and_only_referenced_ones_rebuild(kube_api, cluster, echo_pods) -> None:
    """TLS Secrets reach the process (a referenced one triggers a build); other Secret types are streamed
    too (an annotation may name one) but one nothing names builds nothing and is not read again.
    Serving the certificate is the TLS listener's business."""
    api = kube_api
    pod = await echo_pods.start("web-1", "127.0.0.24")
    api.create(INGRESS_CLASS)
    create_all(api, service("web", pods=[pod]))
    web = ingress("web", host=HOST, paths=[("/", "Prefix", "web", 80)])
    web["spec"]["tls"] = [{"hosts": [HOST], "secretName": "web-tls"}]
    # Plain HTTP keeps answering (a TLS host is otherwise redirected to HTTPS with 308).
    web["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
    api.create(web)
    proc = await cluster.start()
    assert await answers(proc, "/", 200, "web-1")

    async def builds() -> float:
        published = await scrape(proc, "pyngress_config_rebuilds_total", result="published") or 0
        return published + (await scrape(proc, "pyngress_config_rebuilds_total", result="unchanged") or 0)

    async def secret_events() -> float:
        return await scrape(proc, "pyngress_watch_events_total", kind="Secret") or 0

    before = await builds()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "web-tls", "namespace": "default"},
              "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}
    for change in ("create", "modify", "delete"):
        seen = await secret_events()
        if change == "create":
            api.create(secret)
        elif change == "modify":
            secret["data"]["tls.crt"] = "Y2VydDI="
            api.apply(secret)
        else:
            api.delete("Secret", "default", "web-tls")
        await eventually(lambda seen=seen: _above(secret_events(), seen))
        await eventually(lambda before=before: _above(builds(), before))
        before = await builds()

    # An unreferenced TLS Secret arrives but builds nothing; so does an Opaque one (whose data is not kept).
    seen = await secret_events()
    api.create({**secret, "metadata": {"name": "other-tls", "namespace": "default"}})
    await eventually(lambda: _above(secret_events(), seen))
    api.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "password", "namespace": "default"}, "data": {"x": "eA=="}})
    await eventually(lambda: _above(secret_events(), seen + 1))
    marker = ingress("marker", host="marker.test", paths=[("/", "Prefix", "web", 80)])
    api.create(marker)  # a later change on another kind: once it is served, the Opaque Secret had its chance
    await eventually(lambda: answers(proc, "/", 200, "web-1", host="marker.test"))
    assert await secret_events() == seen + 2
    assert await builds() == before + 1  # the marker Ingress only
    assert not [r for r in api.requests if r.resource == "secrets" and r.verb == "get"]


async def _above(value, threshold: float) -> bool:
    return await value > threshold
