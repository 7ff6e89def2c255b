"""ingress-nginx's external authentication annotations at the builder level: what `auth-url` and its
companions compile to (routing.external_auth.ExternalAuth on every route's policy), the nginx variables,
and failing closed. Each test names the ingress-nginx e2e test (test/e2e/annotations/auth.go), the
annotation parser (internal/ingress/annotations/authreq) or the documentation section it reproduces; the
requests themselves are tests/server/test_nginx_auth_url.py's.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.routing.build import build
from proxy.routing.external_auth import ExternalAuth, cache_validity, compile_template
from proxy.settings import Settings

from .gateway.harness import FakeRequest
from .objects import path, rule
from .test_nginx_annotations import HOST, annotated, go, same_as_incremental, warnings_of, world

AUTH = "http://auth.svc.cluster.local:8080/oauth2/auth"


def auths(snap: Any) -> dict[tuple[str, str], ExternalAuth | None]:
    config = build(snap, Settings())
    return {(route.ingress, route.path): route.policy.auth if route.policy is not None else None
            for route in config.routes()}


def request(path: str = "/p", query: str = "a=b&c=d", **headers: str) -> FakeRequest:
    return FakeRequest(method="GET", scheme="http", path=path, query=query, host=HOST, port=80,
                       headers={"Host": HOST, **headers}, client_address="10.1.2.3")


def test_auth_url_puts_the_auth_on_every_route_of_the_ingress():
    """annotations.md "External Authentication": every location of the Ingress (its defaultBackend too) is
    protected; another Ingress of the same host is not. The Host sent is the URL's host without port."""
    snap = world(annotated("ext", rule(HOST, path("/a", "echo"), path("/b", "other")), auth_url=AUTH,
                           default={"service": {"name": "echo", "port": {"number": 80}}}),
                 annotated("open", rule(HOST, path("/c", "echo"))))
    found = auths(snap)
    assert found[("open", "/c")] is None
    auth = found[("ext", "/a")]
    assert auth is not None and found[("ext", "/b")] == auth
    defaults = [value for (name, route_path), value in found.items()
                if name == "ext" and route_path not in ("/a", "/b")]
    assert defaults and all(value == auth for value in defaults)  # the defaultBackend's routes too
    assert auth.url.static and auth.url.render(request(), "/") == AUTH
    assert auth.host.render(request(), "/") == "auth.svc.cluster.local"
    assert (auth.method, auth.signin, auth.cache_key, auth.keepalive, auth.zone) == ("", None, None, 0, "default/ext")
    assert warnings_of(snap) == []
    same_as_incremental(snap)


def test_nginx_variables_are_rendered_from_the_request():
    """annotations.md: auth-url and auth-signin may hold nginx variables ("https://$host/oauth2/auth",
    "https://$host/oauth2/start?rd=$escaped_request_uri"); auth-cache-key "$remote_user$http_authorization"."""
    template, unknown = compile_template("https://$host/x?u=$escaped_request_uri&m=$request_method&a=${arg_c}")
    assert unknown == []
    assert template.render(request(), "/p?a=b&c=d") == \
        f"https://{HOST}/x?u=%2Fp%3Fa%3Db%26c%3Dd&m=GET&a=d"
    key, unknown = compile_template("$remote_user$http_authorization$cookie_sid$remote_addr")
    assert unknown == []
    sent = request(Authorization="Basic dXNlcjpwYXNz", Cookie="a=1; sid=42")
    assert key.render(sent, "/") == "userBasic dXNlcjpwYXNz4210.1.2.3"
    _, unknown = compile_template("http://$upstream_addr/$http_/$host")
    assert unknown == ["upstream_addr", "http_"]


def test_signin_location_as_ingress_nginx_builds_it():
    """auth.go "should redirect to signin url when not signed in" (rd=<scheme>://<host><escaped URI>) and
    "... with auth-signin-redirect-param" (orig=); template.go buildAuthSignURL: a URL that already sets the
    parameter is used as is, another query gets "&"."""
    def location(signin: str, **extra: str) -> bytes:
        snap = world(annotated("ext", rule(HOST, path("/", "echo")), auth_url=AUTH, auth_signin=signin, **extra))
        auth = auths(snap)[("ext", "/")]
        assert auth is not None
        return auth.signin_location(request(), "/?a=b&c=d")

    escaped = "%2F%3Fa%3Db%26c%3Dd"
    assert location("http://$host/auth/start") == f"http://{HOST}/auth/start?rd=http://{HOST}{escaped}".encode()
    assert location("http://$host/auth/start", auth_signin_redirect_param="orig") == \
        f"http://{HOST}/auth/start?orig=http://{HOST}{escaped}".encode()
    assert location("https://login.example/start?x=1") == \
        f"https://login.example/start?x=1&rd=http://{HOST}{escaped}".encode()
    assert location("https://login.example/start?rd=https://back.example") == b"https://login.example/start?rd=https://back.example"


@pytest.mark.parametrize("annotations, reason", [
    # auth.go "with invalid auth-url should deny whole location"
    ({"auth_url": "https://invalid..auth.url"}, "auth-url"),
    ({"auth_url": "not a url"}, "auth-url"),
    ({"auth_url": "ftp://auth.example/x"}, "auth-url"),
    ({"auth_url": "http:///x"}, "auth-url"),
    ({"auth_url": "http://$upstream_addr/x"}, "auth-url"),
    ({"auth_url": AUTH, "auth_method": "FETCH"}, "auth-method"),  # authreq: "invalid HTTP method"
    ({"auth_url": AUTH, "auth_response_headers": "X-User, X User"}, "auth-response-headers"),  # "invalid headers list"
    ({"auth_url": AUTH, "auth_cache_duration": "200 5m 202"}, "auth-cache-duration"),
    ({"auth_url": AUTH, "auth_cache_duration": "200 202"}, "auth-cache-duration"),
    ({"auth_url": AUTH, "auth_always_set_cookie": "yes"}, "auth-always-set-cookie"),
])
def test_invalid_values_fail_closed(annotations, reason):
    """authreq's LocationDenied cases (and the configuration errors it rejects): every route of the Ingress
    answers 503, with a warning naming the Ingress and the annotation; other Ingresses keep serving."""
    snap = world(annotated("ext", rule(HOST, path("/", "echo")), **annotations),
                 annotated("fine", rule("fine.example", path("/", "echo"))))
    assert go(snap, "/").status == 503
    assert go(snap, "/", host="fine.example").status == 200
    assert [w for w in warnings_of(snap) if reason in w and w.startswith("ext: ")]
    same_as_incremental(snap)


def test_optional_values_that_are_invalid_are_dropped_with_a_warning():
    """authreq: an invalid auth-signin or auth-cache-key is only warned about (the auth still applies);
    companions without auth-url do nothing."""
    snap = world(annotated("ext", rule(HOST, path("/", "echo")), auth_url=AUTH, auth_signin="http://$nope/start",
                           auth_cache_key="$nope"),
                 annotated("lonely", rule("lonely.example", path("/", "echo")), auth_signin="http://x/start"))
    auth = auths(snap)[("ext", "/")]
    assert auth is not None and auth.signin is None and auth.cache_key is None
    messages = warnings_of(snap)
    assert any("ext: annotation auth-signin" in m for m in messages)
    assert any("ext: annotation auth-cache-key" in m for m in messages)
    assert any("lonely: annotations auth-signin have no effect without auth-url" in m for m in messages)
    assert auths(snap)[("lonely", "/")] is None


def test_cache_durations_and_keepalive_rules():
    """annotations.md auth-cache-duration ("200 202 10m, 401 5m"; default "200 202 401 5m") and authreq's
    keepalive rules: no keepalive with a variable in the URL's host, or with keepalive-requests/-timeout <= 0."""
    assert cache_validity(("200 202 10m", "401 5m")) == ((200, 600), (202, 600), (401, 300))
    assert cache_validity(("1h", "200 1s")) == ((200, 3600), (301, 3600), (302, 3600))
    snap = world(annotated("ext", rule(HOST, path("/", "echo")), auth_url=AUTH, auth_cache_key="$http_authorization",
                           auth_keepalive="10", auth_keepalive_timeout="30"),
                 annotated("var", rule("var.example", path("/", "echo")), auth_url="http://$host/auth",
                           auth_keepalive="10"),
                 annotated("zero", rule("zero.example", path("/", "echo")), auth_url=AUTH, auth_keepalive="10",
                           auth_keepalive_requests="0"))
    found = auths(snap)
    ext = found[("ext", "/")]
    assert ext is not None and (ext.keepalive, ext.keepalive_timeout) == (10, 30)
    assert ext.cache_valid == ((200, 300), (202, 300), (401, 300))
    assert [found[(name, "/")].keepalive for name in ("var", "zero")] == [0, 0]  # type: ignore[union-attr]
    messages = warnings_of(snap)
    assert any(m.startswith("var: annotation auth-keepalive") for m in messages)
    assert any(m.startswith("zero: annotations auth-keepalive-requests") for m in messages)


def test_auth_survives_the_traffic_policy_layer():
    """The auth policy is kept when the Ingress's traffic annotations (or a BackendTrafficPolicy) make the
    route's policy: both apply (ingress-nginx's location has its auth_request and its proxy_next_upstream)."""
    snap = world(annotated("ext", rule(HOST, path("/", "echo")), auth_url=AUTH, proxy_next_upstream_tries="2",
                           proxy_read_timeout="7", limit_rps="50"))
    config = build(snap, Settings())
    (route,) = [route for route in config.routes() if route.ingress == "ext"]
    assert route.policy is not None
    assert route.policy.auth is not None and route.policy.retry is not None and route.policy.client_limit is not None
    assert (route.policy.auth.connect_timeout, route.policy.auth.timeout) == (5.0, 12.0)
    same_as_incremental(snap)
