"""The real `pyngress` process in file mode with `--configmap`: the ConfigMap is read from the manifests, and an
edit of its file applies live, as ingress-nginx follows its ConfigMap (configmap.md; nginx reloads, we swap).
Facts: configmap.md "limit-req-status-code" (default 503) and "hsts" (Strict-Transport-Security on TLS answers),
"Missing ConfigMap" is ingress-nginx's defaults (its controller starts without one)."""

from __future__ import annotations

from typing import Any

from e2e_harness import INGRESS_CLASS, eventually, ingress, service
from test_tls_listener import https_get

HOST = "cm.example.test"
PREFIX = "nginx.ingress.kubernetes.io/"


def controller_config(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "controller", "namespace": "ingress-nginx"},
            "data": {key.replace("_", "-"): value for key, value in data.items()}}


async def test_editing_the_configmap_file_changes_behaviour_live(echo_pods, manifests, pyngress):
    [web] = await echo_pods.replicas(("web-1", "127.0.0.2"))
    limited = ingress("app", host=HOST, paths=[("/", "Prefix", "web", 80)])
    limited["metadata"]["annotations"] = {PREFIX + "limit-rps": "1", PREFIX + "limit-burst-multiplier": "1"}
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", pods=[web]))
    manifests.write("ingress.yaml", limited)
    proc = await pyngress(manifests.path, "--configmap", "ingress-nginx/controller")
    await eventually(lambda: "ConfigMap ingress-nginx/controller: not found" in proc.log())

    async def burst() -> set[int]:
        return {(await proc.request("/", host=HOST))[0] for _ in range(20)}

    assert await burst() == {200, 503}
    before = await https_get(proc.ports["https"], "/", host=HOST)
    assert before.headers.get("strict-transport-security") == "max-age=31536000; includeSubDomains"

    manifests.write("configmap.yaml", controller_config(limit_req_status_code="429", hsts_max_age="600",
                                                        hsts_preload="true", not_a_key="x"))

    async def hsts() -> str | None:
        return (await https_get(proc.ports["https"], "/", host=HOST)).headers.get("strict-transport-security")

    await eventually(lambda: hsts_is(hsts, "max-age=600; includeSubDomains; preload"))
    assert await burst() == {200, 429}
    assert "key not-a-key is not an ingress-nginx ConfigMap key" in proc.log()

    manifests.write("configmap.yaml", controller_config(hsts="false"))
    await eventually(lambda: hsts_is(hsts, None))
    assert await burst() == {200, 503}


async def hsts_is(read: Any, expected: str | None) -> bool:
    return await read() == expected
