"""Active health checks of HTTP/2 clusters (issue 13 follow-up): pods spoken to in HTTP/2 are probed in HTTP/2.

An HTTP/1.1 probe of an h2c-only pod (a grpcio server) gets no status line and would mark every such pod
unhealthy. The probe of an HTTP/2 cluster is h2c with prior knowledge (or h2 chosen by ALPN over TLS): preface,
SETTINGS, a GET of the check's path judged by its ``:status``; a pod that resets the GET (grpcio takes only gRPC
POSTs) is asked again as a gRPC call of the path, judged by its HTTP status.

ingress-nginx has no active health checks (nginx OSS; its e2e suite has none). The behaviour follows Envoy's HTTP
health checker, which speaks the cluster's codec (``codec_client_type: HTTP2`` for HTTP/2 clusters), and Envoy
Gateway's BackendTrafficPolicy ``healthCheck.active`` (type HTTP: path and expected statuses), which pyngress's
HealthCheck policy mirrors. Real servers only: the h2c echo pod (h2_pods.H2Pod) and a real grpcio server.
"""

from __future__ import annotations

import socket

from backend_pods import HealthPod, Pki, server_context
from proxy.routing.model import Cluster, Endpoint
from proxy.routing.policies import HTTP2, BackendTLS, ClusterPolicy, HealthCheck
from proxy.settings import Settings
from proxy.upstream.cluster import Upstream
from proxy.upstream.health import HealthChecker, HealthVerdicts, probe
from proxy.upstream.tls import H2_ALPN_PROTOCOLS, ClientContexts, UpstreamTLS
from server_harness import wait_until

CHECK = HealthCheck(path=b"/healthz", timeout=2.0)
KEY = "default/grpc:50051"


def closed_port(host: str) -> int:
    """A port on `host` nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def test_an_h2c_pod_is_probed_with_an_http2_get(make_h2_pod):
    pod = await make_h2_pod()
    endpoint = Endpoint(pod.host, pod.port)
    assert await probe(endpoint, check=CHECK, host=b"h2.default.svc", tls=None, http2=True) == ("ok", "")
    seen = pod.seen[-1]
    assert seen[":method"] == "GET" and seen[":path"] == "/healthz" and seen[":scheme"] == "http"
    assert seen[":authority"] == "h2.default.svc" and seen["user-agent"] == "pyngress-health-check"
    # The same pod probed in HTTP/1.1 (what a cluster without HTTP/2 gets) has no status line to give.
    result, _ = await probe(endpoint, check=CHECK, host=b"h2.default.svc", tls=None)
    assert result == "bad_response"


async def test_http2_answers_are_judged_by_status_and_resets_fail(make_h2_pod):
    pod = await make_h2_pod()
    endpoint = Endpoint(pod.host, pod.port)
    result, detail = await probe(endpoint, check=HealthCheck(path=b"/echo", timeout=2.0, expected_statuses=(204,)),
                                 host=b"x", tls=None, http2=True)
    assert (result, detail) == ("unexpected_status", "status 200")
    # /refuse resets every stream (REFUSED_STREAM): the GET, then the gRPC form of the probe too.
    result, detail = await probe(endpoint, check=HealthCheck(path=b"/refuse", timeout=2.0), host=b"x", tls=None,
                                 http2=True)
    assert result == "bad_response" and "reset" in detail
    assert pod.refused == 2
    result, _ = await probe(Endpoint("127.0.0.6", closed_port("127.0.0.6")), check=CHECK, host=b"x", tls=None,
                            http2=True)
    assert result == "connect_failure"


async def test_a_grpcio_server_passes_the_http2_probe_and_fails_the_http11_one(grpc_pod):
    endpoint = Endpoint(grpc_pod.host, grpc_pod.port)
    result, _ = await probe(endpoint, check=CHECK, host=b"grpc.default.svc", tls=None)
    assert result == "bad_response"  # HTTP/1.1 to an h2c-only pod: what marked gRPC pods unhealthy
    # grpcio resets the GET; the gRPC form of the probe gets HTTP 200 (grpc-status UNIMPLEMENTED: not judged).
    assert await probe(endpoint, check=CHECK, host=b"grpc.default.svc", tls=None, http2=True) == ("ok", "")


async def test_h2_over_tls_must_be_chosen_by_alpn(make_h2_pod, tmp_path):
    policy = BackendTLS(verify=False)
    tls = UpstreamTLS(policy, context=ClientContexts(alpn=H2_ALPN_PROTOCOLS).get(policy),
                      server_name="h2.default.svc", http2=True)
    pod = await make_h2_pod(context=server_context(Pki(tmp_path, name="h2 pods").leaf("anything")))
    assert await probe(Endpoint(pod.host, pod.port), check=CHECK, host=b"x", tls=tls, http2=True) == ("ok", "")
    assert pod.seen[-1][":scheme"] == "https" and pod.seen[-1][":authority"] == "h2.default.svc"
    plain_tls = await HealthPod("h1", "127.0.0.9", context=server_context(Pki(tmp_path, name="h1").leaf("x"))).start()
    try:
        result, detail = await probe(Endpoint(plain_tls.host, plain_tls.port), check=CHECK, host=b"x", tls=tls,
                                     http2=True)
        assert result == "tls_failure" and "ALPN" in detail
    finally:
        await plain_tls.stop()


async def test_the_checker_keeps_grpc_pods_healthy_and_marks_a_dead_one(grpc_pod):
    """A checked gRPC cluster (backend-protocol GRPC: protocol HTTP2) of a live grpcio pod and a dead endpoint:
    the live pod stays in, the dead one goes out after unhealthy_threshold failed probes."""
    dead = Endpoint("127.0.0.8", closed_port("127.0.0.8"))
    live = Endpoint(grpc_pod.host, grpc_pod.port)
    check = HealthCheck(path=b"/healthz", interval=0.02, timeout=1.0, healthy_threshold=1, unhealthy_threshold=2)
    cluster = Cluster(key=KEY, namespace="default", service="grpc", port="50051", endpoints=(live, dead),
                      policy=ClusterPolicy(health_check=check, protocol=HTTP2))
    upstreams: dict[str, Upstream] = {}
    checker = HealthChecker(HealthVerdicts(upstreams))
    upstreams[KEY] = upstream = Upstream(cluster, settings=Settings(upstream_connect_timeout=2),
                                         health=checker.verdicts)
    checker.track(upstreams)
    try:
        await wait_until(lambda: not upstream.pool_of(dead).healthy and checker.results["ok"] >= 3)
        assert upstream.pool_of(live).healthy
        assert checker.results["bad_response"] == 0
    finally:
        checker.close()
        upstream.close()
