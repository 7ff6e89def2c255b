"""Route retry policies through real sockets: triggers, idempotency, replay limits, per-try timeouts, the budget.

Routes and clusters carry the policy dataclasses directly (the BackendTrafficPolicy / HTTPRoute front ends
compile into the same objects). Pods fail on cue: a status, a reset, a slow answer, a refused connect.
"""

from __future__ import annotations

import asyncio

from proxy.http.exchange import REPLAY_LIMIT
from proxy.routing.policies import (
    RETRY_5XX,
    RETRY_CONNECT_FAILURE,
    RETRY_GATEWAY_ERROR,
    RETRY_RESET,
    RetryPolicy,
    RoutePolicy,
)
from server_harness import Rule, cluster, read_head, request, wait_until
from test_errors import dead_endpoint

APP = "default/app:80"


def retrying(**fields: object) -> RoutePolicy:
    fields.setdefault("backoff_base", 0.001)
    fields.setdefault("backoff_max", 0.005)
    return RoutePolicy(retry=RetryPolicy(**fields))  # type: ignore[arg-type]


async def test_a_5xx_is_retried_on_another_pod_and_never_reaches_the_client(make_proxy, make_pods):
    bad, good = await make_pods("bad", "good")
    bad.fail_with(503)
    proxy = await make_proxy()
    policy = retrying(retry_on=frozenset({RETRY_5XX}))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [bad.endpoint, good.endpoint])])
    for _ in range(6):
        response = await request(proxy.port, "/x")
        assert response.status == 200 and response.json()["pod"] == "good"
    assert bad.requests == 3  # round robin sent every other first attempt there
    counters = proxy.upstreams[APP].counters
    assert counters.retries["status"] == 3 and proxy.upstreams[APP].retrying == 0
    assert proxy.upstreams[APP].active == 0


async def test_without_retries_left_the_last_answer_goes_through(make_proxy, make_pods):
    a, b = await make_pods("a", "b")
    a.fail_with(503)
    b.fail_with(503)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP, policy=retrying(num_retries=1, retry_on=frozenset({RETRY_5XX})))],
                  [cluster(APP, [a.endpoint, b.endpoint])])
    response = await request(proxy.port, "/")
    assert response.status == 503 and response.body.endswith(b"failing")  # the pod's own answer
    assert a.requests + b.requests == 2  # numRetries counts attempts after the first
    # Retrying 0 times: one attempt.
    proxy.publish([Rule("", "/", APP, policy=retrying(num_retries=0, retry_on=frozenset({RETRY_5XX})))],
                  [cluster(APP, [a.endpoint, b.endpoint])])
    await request(proxy.port, "/")
    assert a.requests + b.requests == 3


async def test_gateway_error_and_listed_codes(make_proxy, make_pods):
    bad, good = await make_pods("bad", "good")
    proxy = await make_proxy()
    policy = retrying(retry_on=frozenset({RETRY_GATEWAY_ERROR}), status_codes=frozenset({429}))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [bad.endpoint, good.endpoint])])
    for status, retried in ((502, True), (504, True), (429, True), (500, False), (404, False)):
        bad.fail_with(status)
        before = bad.requests
        answers = [await request(proxy.port, "/") for _ in range(2)]  # one of the two starts on `bad`
        assert bad.requests == before + 1
        expected = {200} if retried else {200, status}
        assert {r.status for r in answers} == expected, (status, [r.status for r in answers])


async def test_resets_are_retried_when_asked_to(make_proxy, make_pods, make_backend):
    async def reset(reader, writer):
        await read_head(reader)
        writer.transport.abort()

    broken = await make_backend(reset)
    (good,) = await make_pods("good")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP, policy=retrying(retry_on=frozenset({RETRY_RESET})))],
                  [cluster(APP, [broken.endpoint, good.endpoint])])
    statuses = [(await request(proxy.port, "/")).status for _ in range(4)]
    assert statuses == [200] * 4 and broken.connections == 2
    assert proxy.upstreams[APP].counters.retries["reset"] == 2
    # connect-failure alone does not cover a reset.
    proxy.publish([Rule("", "/", APP, policy=retrying(retry_on=frozenset({RETRY_CONNECT_FAILURE})))],
                  [cluster(APP, [broken.endpoint, good.endpoint])])
    statuses = [(await request(proxy.port, "/")).status for _ in range(2)]
    assert sorted(statuses) == [200, 502]


async def test_refused_connects_are_retried_for_any_method(make_proxy, make_pods):
    (good,) = await make_pods("good")
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP, policy=retrying(num_retries=3))],  # connect-failure, the default trigger
                  [cluster(APP, [dead_endpoint(), dead_endpoint("127.0.0.21"), good.endpoint])])
    for _ in range(3):
        response = await request(proxy.port, "/", method="POST", body=b"payload")
        assert response.status == 200 and response.json()["body"] == "payload"
    assert good.requests == 3


async def test_only_idempotent_methods_unless_the_policy_says_otherwise(make_proxy, make_pods):
    bad, good = await make_pods("bad", "good")
    bad.fail_with(503)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP, policy=retrying(retry_on=frozenset({RETRY_5XX})))],
                  [cluster(APP, [bad.endpoint, good.endpoint])])
    posts = [await request(proxy.port, "/", method="POST", body=b"once") for _ in range(2)]
    assert sorted(r.status for r in posts) == [200, 503]
    puts = [await request(proxy.port, "/", method="PUT", body=b"twice") for _ in range(2)]
    assert [r.status for r in puts] == [200, 200]
    proxy.publish([Rule("", "/", APP, policy=retrying(retry_on=frozenset({RETRY_5XX}), idempotent_only=False))],
                  [cluster(APP, [bad.endpoint, good.endpoint])])
    posts = [await request(proxy.port, "/", method="POST", body=b"again") for _ in range(2)]
    assert [r.status for r in posts] == [200, 200]
    assert all(r.json()["body"] == "again" for r in posts)  # the body was replayed whole


async def test_bodies_over_the_replay_limit_are_not_retried_once_sent(make_proxy, make_pods):
    bad, good = await make_pods("bad", "good")
    bad.fail_with(503)
    proxy = await make_proxy()
    proxy.publish([Rule("", "/", APP, policy=retrying(retry_on=frozenset({RETRY_5XX}), idempotent_only=False))],
                  [cluster(APP, [bad.endpoint, good.endpoint])])
    small = b"s" * (REPLAY_LIMIT - 1024)
    large = b"L" * (REPLAY_LIMIT + 1024)
    answers = [await request(proxy.port, "/", method="POST", body=small) for _ in range(2)]
    assert [r.status for r in answers] == [200, 200] and all(len(r.json()["body"]) == len(small) for r in answers)
    answers = [await request(proxy.port, "/", method="POST", body=large) for _ in range(2)]
    assert sorted(r.status for r in answers) == [200, 503]


async def test_per_try_timeout_moves_on_to_another_pod(make_proxy, make_pods):
    slow, fast = await make_pods("slow", "fast")

    async def stall(request):
        await slow.release.wait()  # (set when the test ends)
        return None

    slow.fault = stall
    proxy = await make_proxy()
    policy = retrying(retry_on=frozenset({RETRY_RESET}), per_try_timeout=0.2)
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [slow.endpoint, fast.endpoint])])
    answers = [await request(proxy.port, "/") for _ in range(2)]
    assert [r.json()["pod"] for r in answers] == ["fast", "fast"]
    assert proxy.upstreams[APP].counters.retries["timeout"] == 1
    # Without retries the per-try timeout is the attempt's limit: 504.
    proxy.publish([Rule("", "/", APP, policy=retrying(num_retries=0, per_try_timeout=0.2))],
                  [cluster(APP, [slow.endpoint])])
    assert (await request(proxy.port, "/")).status == 504


async def test_budget_floor_allows_min_retries_and_no_more(make_proxy, make_pods):
    a, b = await make_pods("a", "b")
    a.fail_with(503)
    b.fail_with(503)
    proxy = await make_proxy()
    no_budget = retrying(retry_on=frozenset({RETRY_5XX}), budget=0.0, min_retries=0)
    proxy.publish([Rule("", "/", APP, policy=no_budget)], [cluster(APP, [a.endpoint, b.endpoint])])
    for _ in range(3):
        assert (await request(proxy.port, "/")).status == 503
    counters = proxy.upstreams[APP].counters
    assert a.requests + b.requests == 3 and counters.budget_exhausted == 3 and counters.retries["status"] == 0
    floor = retrying(retry_on=frozenset({RETRY_5XX}), budget=0.0, min_retries=1, num_retries=2)
    proxy.publish([Rule("", "/", APP, policy=floor)], [cluster(APP, [a.endpoint, b.endpoint])])
    assert (await request(proxy.port, "/")).status == 503
    assert a.requests + b.requests == 6  # one request alone: the floor lets it use its two retries


async def test_no_retry_storm_when_every_pod_fails(make_proxy, make_pods):
    """Retries are bounded by the budget (10% of active requests, at least one at a time), not by
    numRetries x requests: a failing cluster sees little more than the requests themselves."""
    pods = await make_pods("a", "b", "c")
    for pod in pods:
        pod.fail_with(503)
    proxy = await make_proxy()
    policy = retrying(retry_on=frozenset({RETRY_5XX}), num_retries=5, budget=0.1, min_retries=1,
                      backoff_base=0.005, backoff_max=0.02)
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [p.endpoint for p in pods])])
    upstream = proxy.upstreams[APP]
    peak = 0

    async def client() -> int:
        nonlocal peak
        failed = 0
        for _ in range(15):
            response = await request(proxy.port, "/")
            failed += response.status == 503
            peak = max(peak, upstream.retrying)
        return failed

    results = await asyncio.gather(*(client() for _ in range(20)))
    attempts = sum(p.requests for p in pods)
    assert sum(results) == 300
    assert attempts < 2 * 300, attempts  # without a budget: up to 6 x 300
    assert upstream.counters.budget_exhausted > 0
    assert upstream.retrying == 0 and upstream.active == 0
    assert peak <= max(1, 0.1 * 20)


async def test_a_client_leaving_during_the_backoff_ends_the_request(make_proxy, make_pods):
    (bad,) = await make_pods("bad")
    bad.fail_with(503)
    proxy = await make_proxy()
    policy = RoutePolicy(retry=RetryPolicy(retry_on=frozenset({RETRY_5XX}), num_retries=3, backoff_base=30,
                                           backoff_max=30))
    proxy.publish([Rule("", "/", APP, policy=policy)], [cluster(APP, [bad.endpoint])])
    upstream = proxy.upstreams[APP]
    task = asyncio.ensure_future(request(proxy.port, "/"))
    await wait_until(lambda: upstream.retrying == 1)
    task.cancel()
    await wait_until(lambda: upstream.retrying == 0 and upstream.active == 0)
    assert bad.requests == 1
