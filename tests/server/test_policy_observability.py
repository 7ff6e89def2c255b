"""What traffic policies show: /metrics families, the /debug/routes endpoint states, the access log's reason."""

from __future__ import annotations

import gc
import json
import os
import threading

from prometheus_client.parser import text_string_to_metric_families

from proxy.accesslog import AccessLog
from proxy.debug import describe_table, explain_match
from proxy.http.attempts import Attempts
from proxy.http.exchange import Exchange
from proxy.metrics import Metrics
from proxy.routing.policies import (
    LEAST_REQUEST,
    RETRY_5XX,
    BackendTLS,
    CircuitBreaker,
    ClusterPolicy,
    Ejection,
    FaultInjection,
    LoadBalancer,
    RateLimit,
    RetryPolicy,
    RoutePolicy,
    SessionAffinity,
)
from server_harness import Rule, cluster, request, wait_until

APP = "default/app:80"
OTHER = "default/other:80"


def samples(proxy) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = Metrics(holder=proxy.holder, server=proxy.server, process=False).render().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def cluster_labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": "default", "service": "app", "port": "80", **extra}.items()))


async def test_metrics_count_what_the_policies_did(make_proxy, make_pods):
    bad, good = await make_pods("bad", "good")
    bad.fail_with(503)
    proxy = await make_proxy()
    retry = RoutePolicy(retry=RetryPolicy(retry_on=frozenset({RETRY_5XX}), backoff_base=0.001, backoff_max=0.001))
    policy = ClusterPolicy(ejection=Ejection(consecutive_5xx=2, base_time=60, max_percent=0.5),
                           circuit_breaker=CircuitBreaker(max_parallel_requests=100))
    limited = RoutePolicy(rate_limit=RateLimit(requests=2, per=60),
                          fault=FaultInjection(abort_status=500, abort_fraction=1.0, header=b"x-chaos"))
    proxy.publish([Rule("", "/", APP, policy=retry), Rule("", "/limited", OTHER, policy=limited)],
                  [cluster(APP, [bad.endpoint, good.endpoint], policy=policy), cluster(OTHER, [good.endpoint])])
    for _ in range(6):
        assert (await request(proxy.port, "/")).status == 200
    assert (await request(proxy.port, "/limited", headers=[("X-Chaos", "1")])).status == 500
    assert (await request(proxy.port, "/limited")).status == 200
    assert (await request(proxy.port, "/limited")).status == 429
    found = samples(proxy)
    assert found[("pyngress_upstream_ejections_total", cluster_labels())] == 1
    assert found[("pyngress_upstream_ejected_endpoints", cluster_labels())] == 1
    assert found[("pyngress_upstream_retry_attempts_total", cluster_labels(reason="status"))] == 2
    assert found[("pyngress_upstream_retry_attempts_total", cluster_labels(reason="reset"))] == 0
    assert found[("pyngress_upstream_overloaded_total", cluster_labels(limit="max-parallel-requests"))] == 0
    assert found[("pyngress_upstream_retry_budget_exhausted_total", cluster_labels())] == 0
    route = {"namespace": "default", "ingress": "test", "host": "", "path": "/limited", "service": "other",
             "kind": "Ingress"}
    assert found[("pyngress_rate_limited_requests_total", tuple(sorted(route.items())))] == 1
    assert found[("pyngress_fault_injections_total", tuple(sorted({**route, "action": "abort"}.items())))] == 1
    assert found[("pyngress_fault_injections_total", tuple(sorted({**route, "action": "delay"}.items())))] == 0


async def test_debug_routes_show_policies_and_endpoint_states(make_proxy, make_pods):
    bad, good = await make_pods("bad", "good")
    bad.fail_with(503)
    proxy = await make_proxy()
    policy = ClusterPolicy(load_balancer=LoadBalancer(kind=LEAST_REQUEST),
                           ejection=Ejection(consecutive_5xx=1, base_time=60, max_percent=0.5))
    # A cluster with TLS to its pods, never requested here: its key material must not be shown.
    secured = ClusterPolicy(tls=BackendTLS(sni="app.internal", client_key=b"-----BEGIN PRIVATE KEY-----"))
    proxy.publish([Rule("", "/", APP, policy=RoutePolicy(retry=RetryPolicy())),
                   Rule("tls.test", "/", "default/tls:80")],
                  [cluster(APP, [bad.endpoint, good.endpoint], policy=policy),
                   cluster("default/tls:80", [good.endpoint], policy=secured)])
    while not proxy.upstreams[APP].ejected:
        await request(proxy.port, "/")
    assert (await request(proxy.port, "/")).status == 200  # the other pod, whatever came before
    runtime = proxy.holder.current
    described = describe_table(runtime)
    (route,) = described["anyHost"]
    (secured_route,) = described["hosts"]["tls.test"]
    assert route["policy"]["retry"]["retry_on"] == ["connect-failure"]
    assert route["policy"]["retry"]["num_retries"] == 2
    assert route["policy"]["retry"].get("per_try_timeout") is None
    assert route["clusterPolicy"]["load_balancer"]["kind"] == "LeastRequest"
    tls = secured_route["clusterPolicy"]["tls"]
    assert tls["client_key"] == "<set>" and tls["sni"] == "app.internal"
    assert route["clusterState"]["ejected"] == 1 and route["clusterState"]["active"] == 0
    states = {state["endpoint"]: state for state in route["endpointStates"]}
    ejected = states[f"{bad.host}:{bad.port}"]
    assert ejected["ready"] and not ejected["balanced"] and 0 < ejected["ejectedSeconds"] <= 60
    assert ejected["ejections"] == 1
    healthy = states[f"{good.host}:{good.port}"]
    assert healthy["balanced"] and healthy["ejectedSeconds"] == 0 and healthy["inFlight"] == 0
    assert healthy["ewmaMs"] > 0 and healthy["idleConnections"] == healthy["openConnections"] == 1
    json.dumps(describe_table(runtime))  # all of it is JSON
    outcome = explain_match(runtime, "any.host", "/")["result"]
    assert outcome == "proxied to one of 1 endpoints (LeastRequest, 1 ejected)"


async def test_access_log_says_why_the_proxy_answered(make_proxy, make_pods):
    (pod,) = await make_pods("a")
    proxy = await make_proxy()
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b"")))
    reader.start()
    proxy.server.access_log = AccessLog(write_end, interval=0.01)
    limited = RoutePolicy(rate_limit=RateLimit(requests=1, per=60))
    proxy.publish([Rule("", "/", APP, policy=limited)],
                  [cluster(APP, [pod.endpoint], policy=ClusterPolicy(circuit_breaker=CircuitBreaker()))])
    assert (await request(proxy.port, "/")).status == 200
    assert (await request(proxy.port, "/")).status == 429
    assert (await request(proxy.port, "/x", host="nowhere")).status == 429  # any host: the same route
    proxy.publish([Rule("web.test", "/app", APP)], [cluster(APP, [])])
    assert (await request(proxy.port, "/app", host="web.test")).status == 503
    assert (await request(proxy.port, "/", host="web.test")).status == 404
    # An unknown host's 404 writes no line (ingress-nginx's default server: enable-access-log-for-default-backend).
    assert (await request(proxy.port, "/", host="other.test")).status == 404
    proxy.server.access_log.close()
    os.close(write_end)
    reader.join(timeout=10)
    os.close(read_end)
    lines = [json.loads(line) for line in b"".join(chunks).splitlines()]
    assert [(e["status"], e["reason"]) for e in lines] == [
        (200, None), (429, "rate-limited"), (429, "rate-limited"), (503, "no-endpoints"), (404, "no-route")]


async def test_policy_exchanges_are_freed_without_the_cyclic_collector(make_proxy, make_pods):
    """An Attempts and its exchange refer to each other until the request is accounted: then the link goes,
    so reference counting frees both (the proxy freezes the collector out of its objects' way)."""
    bad, good = await make_pods("bad", "good")
    bad.fail_with(503)
    proxy = await make_proxy()
    retry = RoutePolicy(retry=RetryPolicy(retry_on=frozenset({RETRY_5XX}), backoff_base=0.001, backoff_max=0.001))
    policy = ClusterPolicy(circuit_breaker=CircuitBreaker(max_parallel_requests=100),
                           affinity=SessionAffinity(cookie=b"route"))
    proxy.publish([Rule("", "/", APP, policy=retry)], [cluster(APP, [bad.endpoint, good.endpoint], policy=policy)])
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            assert (await request(proxy.port, "/")).status == 200
        await wait_until(lambda: proxy.server.active_connections == 0)
        alive = [o for o in gc.get_objects() if type(o) in (Attempts, Exchange)]
        assert alive == []
    finally:
        gc.enable()
