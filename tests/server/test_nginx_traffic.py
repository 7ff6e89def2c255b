"""ingress-nginx traffic annotations end to end: Ingress objects → the real builder → the real proxy → pods.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section whose
behaviour it reproduces: which pod answers, what the client gets when pods fail, the cookie it is given,
TLS to the pods. Pods fail on cue; every wait is bounded (server_harness.TIMEOUT).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from backend_pods import HealthPod, Pki, server_context
from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.model import Config
from server_harness import read_head, request, upload_until_answered
from test_nginx_annotations import ingress


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path, name="pods")


def serve(proxy: Any, services: dict[str, list[HealthPod]], *ingresses: dict[str, Any]) -> Config:
    """Build the table from the Ingresses and one Service (port 80) per entry of `services`, whose pods are
    its endpoints, and publish it."""
    objects = {("default", name): {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": pods[0].port}]}}
        for name, pods in services.items()}
    slices = {("default", name): {f"{name}-1": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        "endpoints": [{"addresses": [pod.host], "conditions": {"ready": True}} for pod in pods],
        "ports": [{"name": "", "port": pods[0].port, "protocol": "TCP"}]}} for name, pods in services.items()}
    snap = Snapshot(ingresses={("default", obj["metadata"]["name"]): obj for obj in ingresses},
                    services=objects, endpoint_slices=slices)
    config = build(snap, proxy.settings)
    proxy.publish_config(config, list(config.clusters.values()))
    return config


@pytest.fixture
async def make_service_pods():
    """Pods of one Service: consecutive loopback addresses sharing one port (a Service's targetPort is one
    number); HTTPS pods when given a server context."""
    pods: list[HealthPod] = []

    async def start(*names: str, context: Any = None) -> list[HealthPod]:
        started: list[HealthPod] = []
        for index, name in enumerate(names, start=2):
            pod = HealthPod(name, f"127.0.0.{index}", context=context)
            pods.append(pod)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", pod.handle)
            pod.runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await pod.runner.setup()
            site = web.TCPSite(pod.runner, pod.host, started[0].port if started else 0, ssl_context=context)
            await site.start()
            pod.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.append(pod)
        return started

    yield start
    for pod in pods:
        await pod.stop()


async def test_proxy_read_timeout_replaces_the_global_one_for_its_ingress(make_proxy, make_service_pods):
    """proxy.go "should set timeout values for proxy read, write and connect": the annotated Ingress waits as
    long as its proxy-read-timeout says, the plain one as long as the global setting (here 0.3s) says."""
    (slow,) = await make_service_pods("slow")
    proxy = await make_proxy(upstream_read_timeout=0.3)
    config = serve(proxy, {"slow": [slow]},
                   ingress("patient", "patient.test", ("/", "Prefix", "slow"), proxy_read_timeout="5",
                           proxy_connect_timeout="2"),
                   ingress("plain", "plain.test", ("/", "Prefix", "slow")))
    response = await request(proxy.port, "/slow?delay=0.8", host="patient.test")
    assert (response.status, response.json()["pod"]) == (200, "slow")
    response = await request(proxy.port, "/slow?delay=0.8", host="plain.test")
    assert response.status == 504
    # proxy-connect-timeout reaches the pools of the Ingress's own cluster only.
    timeouts = {key: {pool.connect_timeout for pool in proxy.upstreams[key].pools} for key in config.clusters}
    assert timeouts["default/slow:80"] == {proxy.settings.upstream_connect_timeout}
    assert [found for key, found in timeouts.items() if key != "default/slow:80"] == [{2.0}]


async def test_proxy_next_upstream_retries_each_pod_once_then_gives_the_last_answer(make_proxy, make_service_pods):
    """proxy.go "should set proxy_next_upstream" / "should setup proxy_next_upstream_tries": with http_502 a 502
    goes on to the next pod; tries 3 with two pods makes two attempts (nginx tries every server once), and
    the client gets the last pod's answer."""
    a, b = await make_service_pods("a", "b")
    a.fail_with(502)
    b.fail_with(502)
    proxy = await make_proxy()
    serve(proxy, {"app": [a, b]},
          ingress("retry", "retry.test", ("/", "Prefix", "app"), proxy_next_upstream="error timeout http_502",
                  proxy_next_upstream_tries="3"),
          ingress("once", "once.test", ("/", "Prefix", "app"), proxy_next_upstream="error timeout http_502",
                  proxy_next_upstream_tries="1"),
          ingress("plain", "plain.test", ("/", "Prefix", "app")))
    response = await request(proxy.port, "/", host="retry.test")
    assert response.status == 502 and response.body.endswith(b"failing")
    assert a.requests + b.requests == 2
    b.fail_with(0)
    for _ in range(4):
        response = await request(proxy.port, "/", host="retry.test")
        assert (response.status, response.json()["pod"]) == (200, "b")
    # tries 1: no retry; no annotation: pyngress's default (connect failures only): a's 502 reaches the client.
    for host in ("once.test", "plain.test"):
        statuses = {(await request(proxy.port, "/", host=host)).status for _ in range(4)}
        assert statuses == {200, 502}, host


async def test_upstream_hash_by_request_uri_keeps_each_uri_on_one_pod(make_proxy, make_service_pods):
    """upstreamhashby.go "should connect to the same pod" ($request_uri), and a header variable ($http_x_user)."""
    pods = await make_service_pods("p1", "p2", "p3")
    proxy = await make_proxy()
    serve(proxy, {"app": pods},
          ingress("uri", "uri.test", ("/", "Prefix", "app"), upstream_hash_by="$request_uri"),
          ingress("user", "user.test", ("/", "Prefix", "app"), upstream_hash_by="$http_x_user"))
    chosen: set[str] = set()
    for index in range(8):
        answers = {(await request(proxy.port, f"/item/{index}", host="uri.test")).json()["pod"] for _ in range(3)}
        assert len(answers) == 1, index
        chosen |= answers
    assert len(chosen) > 1  # eight URIs on a ring of three pods do not all land on one (fixed hashes)
    for user in ("alice", "bob"):
        answers = {(await request(proxy.port, f"/{n}", host="user.test", headers=[("X-User", user)])).json()["pod"]
                   for n in range(4)}
        assert len(answers) == 1, user


async def test_cookie_affinity_sets_the_cookie_and_keeps_the_session_on_its_pod(make_proxy, make_service_pods):
    """affinity.go "should set sticky cookie SERVERID", "should set the path to /something on the generated
    cookie", "should set cookie with expires" and "should set secure in cookie with provided true annotation"."""
    pods = await make_service_pods("p1", "p2", "p3")
    proxy = await make_proxy()
    serve(proxy, {"app": pods},
          ingress("sticky", "sticky.test", ("/", "Prefix", "app"), affinity="cookie",
                  session_cookie_name="SERVERID", session_cookie_path="/something",
                  session_cookie_expires="172800", session_cookie_secure="true"))
    response = await request(proxy.port, "/something", host="sticky.test")
    cookie = response.header("Set-Cookie")
    assert response.status == 200 and cookie is not None
    assert cookie.startswith("SERVERID=") and "; Path=/something" in cookie and "Max-Age=172800" in cookie
    assert "; Secure" in cookie
    pod = response.json()["pod"]
    value = cookie.split(";")[0]
    for _ in range(6):
        again = await request(proxy.port, "/something", host="sticky.test", headers=[("Cookie", value)])
        assert (again.json()["pod"], again.header("Set-Cookie")) == (pod, None)


async def test_backend_protocol_https_speaks_tls_to_the_pod_without_verifying_it(make_proxy, make_service_pods, pki):
    """backendprotocol.go "should set backend protocol to https:// and use proxy_pass": the pod's certificate is
    not checked (proxy_ssl_verify is off by default); a plain Ingress to the same TLS port gets 502;
    proxyssl.go with a proxy-ssl-secret pyngress cannot read: 503, the pod never reached."""
    [pod] = await make_service_pods("secure", context=server_context(pki.leaf("not-the-service-name")))
    proxy = await make_proxy()
    serve(proxy, {"secure": [pod]},
          ingress("https", "https.test", ("/", "Prefix", "secure"), backend_protocol="HTTPS"),
          ingress("plain", "plain.test", ("/", "Prefix", "secure")),
          ingress("ssl", "ssl.test", ("/", "Prefix", "secure"), backend_protocol="HTTPS",
                  proxy_ssl_secret="default/ca", proxy_ssl_verify="on"))
    response = await request(proxy.port, "/x", host="https.test")
    assert (response.status, response.json()["pod"], response.json()["path"]) == (200, "secure", "/x")
    assert (await request(proxy.port, "/x", host="plain.test")).status == 502
    before = pod.requests
    assert (await request(proxy.port, "/x", host="ssl.test")).status == 503
    assert pod.requests == before



async def test_proxy_next_upstream_timeout_stops_retrying_once_it_has_passed(make_proxy, make_service_pods):
    """annotations.md "Custom timeouts" (proxy-next-upstream-timeout: the time during which a request may be
    passed to the next server): a pod that fails after 1.2s is not retried under a 1s limit, and is
    retried without one."""
    a, b = await make_service_pods("a", "b")

    async def late_502(request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.sleep(1.2)  # the pod's slowness, not a synchronization: the limit is what is tested
        return web.Response(status=502, text="late")

    a.fault = late_502
    proxy = await make_proxy()
    serve(proxy, {"app": [a, b]},
          ingress("limited", "limited.test", ("/", "Prefix", "app"), proxy_next_upstream="http_502",
                  proxy_next_upstream_timeout="1"),
          ingress("unlimited", "unlimited.test", ("/", "Prefix", "app"), proxy_next_upstream="http_502"))
    limited = [await request(proxy.port, "/", host="limited.test") for _ in range(2)]  # one starts on `a`
    assert sorted(r.status for r in limited) == [200, 502]
    unlimited = [await request(proxy.port, "/", host="unlimited.test") for _ in range(2)]
    assert [r.status for r in unlimited] == [200, 200]


async def test_proxy_send_timeout_bounds_a_pod_that_stops_reading_the_upload(make_proxy, make_backend):
    """proxy.go "should set timeout values for proxy read, write and connect" (proxy_send_timeout): a pod that
    never reads the request body gets 504 after the Ingress's proxy-send-timeout (1s), although the global
    read timeout (60s) would wait much longer."""
    async def handler(reader, writer):
        await read_head(reader)
        await asyncio.sleep(30)  # never reads the body

    backend = await make_backend(handler)
    proxy = await make_proxy()
    host, port = backend.endpoint
    serve(proxy, {"stuck": [SimpleNamespace(host=host, port=port)]},  # type: ignore[list-item]
          ingress("upload", "upload.test", ("/", "Prefix", "stuck"), proxy_send_timeout="1",
                  proxy_body_size="0"))  # (no body size limit: the upload is larger than the default 1m)
    response = await upload_until_answered(proxy.port, host="upload.test")
    assert response.status == 504
