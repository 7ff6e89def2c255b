"""The rules of route policies on their own: token buckets, retry triggers, backoff, cookies, counters' merge."""

from __future__ import annotations

from proxy.http.affinity import cookie_value, set_cookie
from proxy.http.attempts import backoff, failure_reason, retries_status
from proxy.http.head import RequestHead
from proxy.http.ratelimit import CLIENT_TABLE_LIMIT, Limiters, RateLimiter
from proxy.routing.model import Route
from proxy.routing.policies import (
    RETRY_5XX,
    RETRY_GATEWAY_ERROR,
    RateLimit,
    RetryPolicy,
    RoutePolicy,
    SessionAffinity,
)
from proxy.stats import merge
from proxy.upstream.errors import (
    AttemptTimeout,
    ConnectError,
    ConnectTimeout,
    NoEndpoints,
    Overloaded,
    ProtocolError,
    RequestTimeout,
    RetryableStatus,
    UpstreamClosed,
    UpstreamTimeout,
)


def test_bucket_holds_requests_plus_burst_then_refills_at_the_rate():
    limiter = RateLimiter(RateLimit(requests=5, per=1.0, burst=2))
    assert [limiter.allow(b"a") for _ in range(8)] == [True] * 7 + [False]
    assert limiter.limited == 1
    limiter.bucket.at -= 0.2  # a fifth of a second later: one token (5 a second)
    assert limiter.allow(b"a") and not limiter.allow(b"a")
    limiter.bucket.at -= 60  # a long pause refills up to the capacity, no more
    assert sum(limiter.allow(b"a") for _ in range(10)) == 7
    assert limiter.retry_after() == 1
    assert RateLimiter(RateLimit(requests=1, per=60)).retry_after() == 60


def test_per_client_buckets_are_separate_and_the_table_is_bounded():
    limiter = RateLimiter(RateLimit(requests=1, per=60, per_client=True))
    assert limiter.allow(b"10.0.0.1") and not limiter.allow(b"10.0.0.1")
    assert limiter.allow(b"10.0.0.2")
    for i in range(CLIENT_TABLE_LIMIT + 500):
        limiter.allow(b"c%d" % i)
    assert len(limiter.clients) == CLIENT_TABLE_LIMIT
    assert b"10.0.0.1" not in limiter.clients  # the least recently seen went first


def test_limiters_keep_their_buckets_across_tables_while_the_rule_stays():
    policy = RoutePolicy(rate_limit=RateLimit(requests=1, per=60))

    def route(path: str, rate: RoutePolicy | None = policy) -> Route:
        return Route("ns", "web", "a.test", path, "Prefix", "ns/svc:80", policy=rate)

    limiters = Limiters()
    first = limiters.bind([route("/a"), route("/b"), route("/plain", None)])
    assert len(first) == 2
    (limiter_a, limiter_b) = first.values()
    assert limiter_a is not limiter_b  # one bucket per rule
    limiter_a.allow(b"x")
    again = route("/a")  # an equal rule in the next table (a new object)
    second = limiters.bind([again])
    assert second[id(again)] is limiter_a
    changed = route("/a", RoutePolicy(rate_limit=RateLimit(requests=2, per=60)))
    assert limiters.bind([changed])[id(changed)] is not limiter_a


def test_failure_reasons_and_status_triggers():
    assert failure_reason(ConnectError("x")) == failure_reason(ConnectTimeout("x")) == "connect-failure"
    assert failure_reason(UpstreamClosed("x")) == failure_reason(ProtocolError("x")) == "reset"
    assert failure_reason(UpstreamTimeout("x")) == failure_reason(AttemptTimeout("x")) == "timeout"
    assert failure_reason(RetryableStatus(503)) == "status"
    for never in (RequestTimeout("x"), NoEndpoints("x"), Overloaded("max-connections")):
        assert failure_reason(never) == ""
    five = RetryPolicy(retry_on=frozenset({RETRY_5XX}))
    gateway = RetryPolicy(retry_on=frozenset({RETRY_GATEWAY_ERROR}), status_codes=frozenset({429}))
    assert [retries_status(five, s) for s in (500, 503, 429, 200)] == [True, True, False, False]
    assert [retries_status(gateway, s) for s in (500, 502, 503, 504, 429, 404)] == \
        [False, True, True, True, True, False]


def test_backoff_is_jittered_exponential_and_capped():
    retry = RetryPolicy(backoff_base=0.1, backoff_max=0.3)
    for number, upper in ((1, 0.1), (2, 0.2), (3, 0.3), (10, 0.3), (100, 0.3)):
        draws = [backoff(retry, number) for _ in range(500)]
        assert all(0 <= d <= upper for d in draws) and max(draws) > upper * 0.8 and min(draws) < upper * 0.2
    assert backoff(RetryPolicy(backoff_base=0.0), 3) == 0.0


def test_cookies_are_read_from_every_cookie_field_and_written_with_their_attributes():
    head = RequestHead()
    head.add_header(b"Cookie", b"a=1; route=abc")
    head.add_header(b"cookie", b"other=2")
    assert cookie_value(head, b"route") == b"abc" and cookie_value(head, b"other") == b"2"
    assert cookie_value(head, b"rout") is None and cookie_value(head, b"missing") is None
    full = SessionAffinity(cookie=b"route", path=b"/app", max_age=3600, same_site=b"Lax", secure=True,
                           domain=b"example.com")
    assert set_cookie(full, b"t0k3n") == \
        b"route=t0k3n; Path=/app; Max-Age=3600; Domain=example.com; SameSite=Lax; Secure; HttpOnly"
    assert set_cookie(SessionAffinity(cookie=b"s"), b"t") == b"s=t; Path=/; HttpOnly"


def test_policy_counters_add_up_over_workers():
    cluster = {"ejected": 1, "ejections": 3, "overloaded": {"max-connections": 2}, "retries": {"status": 5},
               "budget_exhausted": 1}
    one = {"routes": [], "route_policy": [[["ns", "web", "", "/", "svc", "Ingress"], [1, 2, 3]]],
           "clusters": [[["ns", "svc", "80"], cluster]]}
    merged = merge([one, one, {"routes": []}])
    assert merged["route_policy"] == [[["ns", "web", "", "/", "svc", "Ingress"], [2, 4, 6]]]
    assert merged["clusters"] == [[["ns", "svc", "80"], {"ejected": 2, "ejections": 6,
                                                          "overloaded": {"max-connections": 4},
                                                          "retries": {"status": 10}, "budget_exhausted": 2}]]
