"""ingress-nginx's security annotations at the builder level: source ranges, per-client limits, CORS.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section
(docs/user-guide/nginx-configuration/annotations.md) whose behaviour it reproduces. Requests go through
the built table and the rule's filters (`harness.send(..., ingress=True, client=...)`); limits are
counters of the running proxy, checked end to end in tests/server/test_nginx_security.py.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from proxy.routing.access import AddressSet
from proxy.routing.build import build
from proxy.routing.policies import ClientLimit
from proxy.settings import Settings

from .gateway.objects import snapshot as gateway_snapshot
from .objects import backend_world, ingress, path, rule
from .policy.objects import target, traffic_policy
from .test_nginx_annotations import HOST, annotated, go, same_as_incremental, warnings_of, world


def test_denylist_denies_only_the_listed_addresses():
    """ipdenylist.go "only deny explicitly denied IPs, allow all others"."""
    snap = world(annotated("deny", rule(HOST, path("/", "echo")), denylist_source_range="18.0.0.0/8, 56.0.0.1"))
    assert go(snap, "/", client="18.0.0.1").status == 403
    assert go(snap, "/", client="56.0.0.1").status == 403
    assert go(snap, "/", client="56.0.0.2").status == 200
    same_as_incremental(snap)


def test_allowlist_and_denylist_together():
    """ipdenylist.go "only allow explicitly allowed IPs, deny all others": the denylist is checked first,
    then only the allowlist's networks pass (nginx's deny lines, allow lines, deny all)."""
    snap = world(annotated("both", rule(HOST, path("/", "echo")), denylist_source_range="18.1.0.0/16, 56.0.0.0/8",
                           whitelist_source_range="18.0.0.0/8, 55.0.0.0/8"))
    cases = {"18.1.0.1": 403, "10.10.10.10": 403, "18.4.0.1": 200, "55.55.55.55": 200, "56.1.1.1": 403}
    assert {client: go(snap, "/", client=client).status for client in cases} == cases


def test_allowlist_source_range_and_its_whitelist_alias():
    """ipallowlist.go "should set valid ip allowlist range" (allowlist-source-range: 18.0.0.0/8, 56.0.0.0/8);
    annotations.md "Whitelist source range" (the older spelling, an alias). The canonical name wins."""
    snap = world(annotated("allow", rule(HOST, path("/", "echo")), allowlist_source_range="18.0.0.0/8, 56.0.0.0/8",
                           whitelist_source_range="10.0.0.0/8"))
    assert [go(snap, "/", client=c).status for c in ("18.2.3.4", "56.0.0.9", "10.0.0.1", "57.0.0.1")] == \
        [200, 200, 403, 403]
    assert warnings_of(snap) == []
    # ingress-nginx reads the alias only when the main spelling is absent: an invalid allowlist is not
    # rescued by a valid whitelist (fail closed).
    snap = world(annotated("allow", rule(HOST, path("/", "echo")), allowlist_source_range="18.0.0.0/88",
                           whitelist_source_range="10.0.0.0/8"))
    assert go(snap, "/", client="10.0.0.1").status == 503


def test_host_bits_single_addresses_and_ipv6():
    """ingress-nginx's net.ParseIPNets: an address is a /32 (/128), host bits of a network are ignored;
    IPv4-mapped IPv6 clients (a dual-stack listener) are checked as IPv4."""
    snap = world(annotated("v6", rule(HOST, path("/", "echo")),
                           whitelist_source_range="10.1.2.3/8, 192.168.0.7, 2001:db8::/32"))
    allowed = ["10.200.0.1", "192.168.0.7", "2001:db8::1", "::ffff:10.9.9.9"]
    refused = ["192.168.0.8", "2001:db9::1", "::ffff:11.0.0.1", "not-an-address", ""]
    assert {go(snap, "/", client=c).status for c in allowed} == {200}
    assert {go(snap, "/", client=c).status for c in refused} == {403}


def test_address_set_membership_with_many_networks():
    """The compiled set answers like ipaddress for a mix of prefix lengths (one lookup per length)."""
    rng = random.Random(12)
    networks = {ipaddress.IPv4Network((rng.randrange(1 << 32), length), strict=False)
                for length in (8, 16, 24, 28, 32) for _ in range(200)}
    compiled = AddressSet(tuple(sorted(str(n) for n in networks)))
    inside = [network.network_address + rng.randrange(network.num_addresses) for network in networks]
    for address in [*inside, *(ipaddress.IPv4Address(rng.randrange(1 << 32)) for _ in range(2000))]:
        assert (str(address).encode() in compiled) == any(address in n for n in networks)


@pytest.mark.parametrize("annotation", ["whitelist_source_range", "denylist_source_range"])
@pytest.mark.parametrize("value", ["10.0.0.0/33", "18.0.0.0/8,", "banana", " "])
def test_an_invalid_source_range_fails_closed_with_503(annotation, value):
    """annotations.md "Denylist/Whitelist source range" + ingress-nginx's LocationDeniedError: a value that is
    not a list of networks makes the location `return 503`, never served unprotected. Every route of the
    Ingress (its defaultBackend's too) answers 503; another Ingress of the host is unaffected."""
    snap = world(annotated("bad", rule(HOST, path("/a", "echo")), default={"service": {"name": "echo",
                                                                                         "port": {"number": 80}}},
                           **{annotation: value}),
                 ingress("good", rule(HOST, path("/b", "other")), created="2024-02-01T00:00:00Z"))
    assert go(snap, "/a", client="1.2.3.4").status == 503
    assert go(snap, "/elsewhere", client="1.2.3.4").status == 503
    assert go(snap, "/b", client="1.2.3.4").status == 200
    warning = [w for w in warnings_of(snap) if annotation.replace("_", "-") in w]
    assert len(warning) == 1 and warning[0].startswith("bad:") and "503" in warning[0], warnings_of(snap)


def test_a_default_backend_is_protected_like_the_rules():
    """A path no rule names must not bypass the Ingress's allowlist."""
    snap = world(annotated("d", rule(HOST, path("/a", "echo")), whitelist_source_range="10.0.0.0/8",
                           default={"service": {"name": "echo", "port": {"number": 80}}}))
    assert go(snap, "/other", client="10.0.0.1").status == 200
    assert go(snap, "/other", client="11.0.0.1").status == 403
    assert go(snap, "/anything", host="unknown.host", client="11.0.0.1").status == 403  # the catch-all too


def limits_of(snap) -> set[ClientLimit | None]:
    config = build(snap, Settings())
    return {route.policy.client_limit if route.policy is not None else None for route in config.routes()}


def test_rate_limit_annotations_compile_to_one_zone_per_ingress():
    """annotations.md "Rate Limiting": limit-rps and limit-rpm with burst = limit x limit-burst-multiplier
    (nginx's `limit_req ... burst=N nodelay`: N + 1 requests at once), limit-connections, limit-whitelist;
    ratelimit/main.go: one zone per Ingress, shared by its locations; a 503 over the limit."""
    snap = world(annotated("limited", rule(HOST, path("/a", "echo"), path("/b", "main")), rule("other.host",
                                                                                                path("/", "echo")),
                           limit_rps="5", limit_rpm="300", limit_connections="8", limit_burst_multiplier="3",
                           limit_whitelist="10.0.0.0/8"),
                 annotated("plain", rule("plain.host", path("/", "echo"))))
    limits = limits_of(snap) - {None}
    assert len(limits) == 1  # the three routes of the Ingress share one zone
    (limit,) = limits
    assert (limit.zone, limit.connections, limit.status) == ("default/limited", 8, 503)
    assert limit.rps is not None and (limit.rps.requests, limit.rps.per, limit.rps.requests + limit.rps.burst) \
        == (5, 1.0, 16)
    assert limit.rpm is not None and (limit.rpm.requests, limit.rpm.per, limit.rpm.requests + limit.rpm.burst) \
        == (300, 60.0, 901)
    assert limit.rps.per_client and limit.exempt == AddressSet(("10.0.0.0/8",))
    assert go(snap, "/", host="plain.host").route.plain  # an Ingress without limits stays plain
    same_as_incremental(snap)


def test_the_default_burst_multiplier_is_5():
    """ratelimit/main.go defBurst = 5; a multiplier that is not a number falls back to it."""
    for extra in ({}, {"limit_burst_multiplier": "lots"}):
        (limit,) = limits_of(world(annotated("r", rule(HOST, path("/", "echo")), limit_rps="2", **extra))) - {None}
        assert limit.rps is not None and limit.rps.requests + limit.rps.burst == 11


def test_a_non_numeric_limit_disables_only_that_limit_with_a_warning():
    """Bad input (issue 12): `limit-rps: abc` disables that limit for that Ingress, with a warning naming it;
    the Ingress's other limits and routes keep working."""
    snap = world(annotated("abc", rule(HOST, path("/", "echo")), limit_rps="abc", limit_connections="2"))
    (limit,) = limits_of(snap) - {None}
    assert limit.rps is None and limit.connections == 2
    assert any("limit-rps" in w and w.startswith("abc:") for w in warnings_of(snap))
    assert go(snap, "/").status == 200
    snap = world(annotated("all-bad", rule(HOST, path("/", "echo")), limit_rpm="x", limit_whitelist="10.0.0.0/40"))
    assert limits_of(snap) == {None}
    assert len(warnings_of(snap)) == 2


# ---------------------------------------------------------------------------------------------- CORS

DEFAULT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Methods": "GET, PUT, POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,"
                                    "Content-Type,Range,Authorization",
    "Access-Control-Max-Age": "1728000",
}


def cors(**annotations: str):
    return world(annotated("cors", rule(HOST, path("/", "echo")), enable_cors="true", **annotations))


def allow_origin(snap, origin: str) -> str | None:
    return go(snap, "/", headers={"Origin": origin}).response_headers.get("Access-Control-Allow-Origin")


def test_enable_cors_defaults():
    """cors.go "should enable cors" and "should not break functionality - without `*`": every response gets
    the default headers and Access-Control-Allow-Origin: * (with an Origin or without)."""
    snap = cors()
    outcome = go(snap, "/")
    assert outcome.status == 200
    assert {k: v for k, v in outcome.response_headers.items() if k.startswith("Access-")} == DEFAULT_HEADERS
    assert allow_origin(snap, "https://anything.example") == "*"
    same_as_incremental(snap)


def test_cors_methods_headers_expose_max_age_and_credentials():
    """cors.go "should set cors methods to only allow POST, GET", "should set cors max-age", "should disable
    cors allow credentials", "should allow headers for cors", "should expose headers for cors"."""
    snap = cors(cors_allow_methods="POST, GET", cors_max_age="200", cors_allow_credentials="false",
                cors_allow_headers="DNT, User-Agent",
                cors_expose_headers="X-CustomResponseHeader, X-CustomSecondHeader")
    headers = go(snap, "/").response_headers
    assert headers["Access-Control-Allow-Methods"] == "POST, GET"
    assert headers["Access-Control-Max-Age"] == "200"
    assert "Access-Control-Allow-Credentials" not in headers
    assert headers["Access-Control-Allow-Headers"] == "DNT, User-Agent"
    assert headers["Access-Control-Expose-Headers"] == "X-CustomResponseHeader, X-CustomSecondHeader"


def test_invalid_cors_values_fall_back_to_the_defaults_with_a_warning():
    """cors/main.go: a value its validator refuses is replaced by the default."""
    snap = cors(cors_allow_methods="GET;rm", cors_max_age="soon", cors_allow_credentials="maybe")
    headers = go(snap, "/").response_headers
    assert headers["Access-Control-Allow-Methods"] == DEFAULT_HEADERS["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Max-Age"] == "1728000"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert len(warnings_of(snap)) == 3


@pytest.mark.parametrize(("allowed", "origin", "expected"), [
    # cors.go "should allow origin for cors"
    ("https://origin.cors.com:8080", "https://origin.cors.com:8080", True),
    # "should allow - single origin for multiple cors values"
    ("https://origin.cors.com:8080, https://origin2.cors.com", "https://origin.cors.com:8080", True),
    # "should not allow - single origin for multiple cors values"
    ("http://origin2.cors.com, https://origin.com", "http://no.origin.com", False),
    # "should allow correct origins - single origin for multiple cors values" (an entry without scheme is skipped)
    ("origin.cors.com:8080, https://origin2.cors.com, https://origin.com", "origin.cors.com:8080", False),
    ("origin.cors.com:8080, https://origin2.cors.com, https://origin.com", "https://origin.com", True),
    # "should not match"
    ("https://foo.bar.com", "https://fooxbar.com", False),
    # "should allow - single origin with required port"
    ("http://origin.cors.com:8080, http://origin.com:8080", "http://origin.com:8080", True),
    # "should not allow - single origin with port and origin without port"
    ("https://origin2.cors.com, http://origin.com", "http://origin.com:8080", False),
    # "should not allow - single origin without port and origin with required port"
    ("http://origin.cors.com:8080, http://origin.com:8080", "http://origin.com", False),
    # "should allow - matching origin with wildcard origin (2 subdomains)"
    ("http://*.origin.cors.com, http://*.origin.com:8080", "http://foo.origin.cors.com", True),
    ("http://*.origin.cors.com, http://*.origin.com:8080", "http://bar-foo.origin.cors.com", True),
    # "should not allow - unmatching origin with wildcard origin (2 subdomains)": "*" is one label
    ("http://*.origin.cors.com, http://*.origin.com:8080", "http://bar.foo.origin.cors.com", False),
    # "should allow - matching origin+port with wildcard origin" / "should not allow - portless origin ..."
    ("http://origin.cors.com:8080, http://*.origin.com:8080", "http://abc.origin.com:8080", True),
    ("http://origin.cors.com:8080, http://*.origin.com:8080", "http://abc.origin.com", False),
    # "should allow correct origins - missing subdomain + origin with wildcard origin and correct origin"
    ("http://origin.cors.com:8080, http://*.origin.com:8080", "http://origin.com", False),
    # "cors allow origin annotations contain trailing comma"
    ("https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,", "https://origin-321.cors.com:8080",
     True),
    ("https://origin-123.cors.com:8080,   ,https://origin-321.cors.com:8080,", "https://unknown.cors.com:8080",
     False),
    # "should allow - origins with non-http[s] protocols"
    ("test://localhost, tauri://localhost:3000", "tauri://localhost:3000", True),
    # annotations.md: "null" may be listed; nginx's `~*` compares without case; anchored at both ends here
    ("null, https://a.example", "null", True),
    ("https://a.example", "HTTPS://A.EXAMPLE", True),
    ("https://a.example", "https://evil.example/https://a.example", False),
])
def test_cors_allow_origin(allowed, origin, expected):
    snap = cors(cors_allow_origin=allowed)
    assert allow_origin(snap, origin) == (origin if expected else None)


@pytest.mark.parametrize("allowed", ["*", "*, foo.bar.com", "      ", "foo.bar.com, *"])
def test_a_star_or_blank_origin_list_allows_every_origin(allowed):
    """cors.go "should not break functionality", "... with extra domain", "should allow - missing origins
    (should allow all origins)": "*" anywhere, or nothing, is "*"."""
    snap = cors(cors_allow_origin=allowed)
    assert allow_origin(snap, "http://book.origin.com") == "*"
    assert go(snap, "/").response_headers["Access-Control-Allow-Origin"] == "*"


def test_a_list_of_only_invalid_origins_sends_no_cors_headers():
    snap = cors(cors_allow_origin="origin.cors.com:8080")
    assert allow_origin(snap, "origin.cors.com:8080") is None
    assert any("cors-allow-origin" in w for w in warnings_of(snap))


def test_the_preflight_is_answered_by_the_proxy_with_204():
    """ingress-nginx's CORS template block: an OPTIONS request from an allowed origin gets 204 with every
    Access-Control-* field and `Content-Type: text/plain charset=UTF-8`; from another origin it goes to the
    pod (which answers it); with "*" every OPTIONS is a preflight."""
    snap = cors(cors_allow_origin="https://app.example")
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    outcome = go(snap, "/", method="OPTIONS", headers=preflight)
    assert (outcome.status, outcome.service) == (204, "")
    assert outcome.response_headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert outcome.response_headers["Access-Control-Allow-Methods"] == DEFAULT_HEADERS["Access-Control-Allow-Methods"]
    assert outcome.response_headers["Content-Type"] == "text/plain charset=UTF-8"
    outcome = go(snap, "/", method="OPTIONS", headers={"Origin": "https://other.example"})
    assert (outcome.status, outcome.service) == (200, "echo")
    assert go(cors(), "/", method="OPTIONS").status == 204


def test_cors_with_a_source_range_refuses_with_cors_headers():
    """nginx runs the CORS block (rewrite phase) before allow/deny (access phase): a preflight is answered
    before the source check, and a 403 still carries the CORS headers (more_set_headers on every answer)."""
    snap = world(annotated("both", rule(HOST, path("/", "echo")), enable_cors="true",
                           whitelist_source_range="10.0.0.0/8"))
    refused = go(snap, "/", client="11.0.0.1", headers={"Origin": "https://x.example"})
    assert refused.status == 403 and refused.response_headers["Access-Control-Allow-Origin"] == "*"
    assert go(snap, "/", client="11.0.0.1", method="OPTIONS").status == 204


def test_cors_annotations_on_the_pyngress_prefix():
    snap = world(annotated("p", rule(HOST, path("/", "echo"))))
    snap.ingresses[("default", "p")]["metadata"]["annotations"] = {
        "pyngress.dev/enable-cors": "true", "pyngress.dev/cors-allow-origin": "https://a.example"}
    assert allow_origin(snap, "https://a.example") == "https://a.example"


def test_limits_and_a_traffic_policy_on_the_same_ingress_both_apply():
    """An Ingress with limit-rps and a BackendTrafficPolicy (retries, its own rate limit) keeps both: the
    annotation's limit and the policy's sections are merged, neither replaces the other."""
    limited = annotated("shop", rule(HOST, path("/", "echo")), limit_rps="4")
    policy = traffic_policy("own", target("Ingress", "shop"), retry={"numRetries": 1}, rateLimit={
        "type": "Local", "local": {"rules": [{"limit": {"requests": 100, "unit": "Second"}}]}})
    snap = gateway_snapshot(limited, policy, *backend_world("echo"))
    config = build(snap, Settings())
    (route,) = [r for r in config.routes() if r.ingress == "shop"]
    assert route.policy is not None and route.policy.retry is not None and route.policy.retry.num_retries == 1
    assert route.policy.rate_limit is not None and route.policy.rate_limit.requests == 100
    assert route.policy.client_limit is not None and route.policy.client_limit.rps is not None
    same_as_incremental(snap)
