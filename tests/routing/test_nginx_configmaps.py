"""Annotations that name a ConfigMap: `custom-headers` and `auth-proxy-set-headers` (ingress-nginx's
test/e2e/annotations/customheaders.go, test/e2e/annotations/auth.go "should set proxy_set_header ... when
auth-proxy-set-headers is set", internal/ingress/annotations/customheaders and authreq)."""

from __future__ import annotations

from typing import Any

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.settings import Settings

from .gateway.harness import send
from .objects import path, rule
from .test_nginx_annotations import HOST, annotated, go, world
from .test_nginx_auth_url import AUTH, auths, request

CONTROLLER = Settings(configmap="ingress-nginx/controller")


def config_map(name: str, data: dict[str, str], *, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data}


def controller(**data: str) -> dict[str, Any]:
    return config_map("controller", {key.replace("_", "-"): value for key, value in data.items()},
                      namespace="ingress-nginx")


def outcome(snap: Any, target: str = "/") -> Any:
    from .gateway.harness import send
    return send(build(snap, CONTROLLER), target, host=HOST, ingress=True)


def messages(snap: Any) -> list[str]:
    return [f"{w.name}: {w.message}" for w in build(snap, CONTROLLER).warnings]


def test_custom_headers_are_set_on_the_answers():
    """customheaders.go "should set more_set_headers 'My-Custom-Header' '42'": each allowed header is set on the
    answer; a value with `$` is literal text (the e2e test expects "$remote_addr" as written)."""
    snap = world(annotated("web", rule(HOST, path("/", "echo")), custom_headers="default/custom-headers"),
                 config_map("custom-headers", {"My-Custom-Header": "42", "My-Custom-Header-Dollar": "$remote_addr"}),
                 controller(global_allowed_response_headers="My-Custom-Header,My-Custom-Header-Dollar"))
    seen = outcome(snap)
    assert seen.status == 200
    assert seen.response_headers["My-Custom-Header"] == "42"
    assert seen.response_headers["My-Custom-Header-Dollar"] == "$remote_addr"
    assert not [m for m in messages(snap) if m.startswith("web:")]
    same_config(snap)


def test_without_custom_headers_nothing_changes():
    """customheaders.go "should return status code 200 when no custom-headers is configured"."""
    snap = world(annotated("web", rule(HOST, path("/", "echo"))))
    assert go(snap, "/").status == 200


def test_a_missing_configmap_fails_closed():
    """customheaders.go "should return status code 503 when custom-headers is configured with an invalid secret":
    the ConfigMap does not exist, so the location is denied (503); other Ingresses keep serving."""
    snap = world(annotated("web", rule(HOST, path("/", "echo")), custom_headers="default/custom-headers"),
                 annotated("other", rule("other.example", path("/", "echo"))))
    assert outcome(snap).status == 503
    from .gateway.harness import send
    assert send(build(snap, CONTROLLER), "/", host="other.example", ingress=True).status == 200
    assert any("web: annotation custom-headers: ConfigMap default/custom-headers not found" in m
               for m in messages(snap))


def test_headers_not_allowed_or_invalid_fail_closed():
    """customheaders.Parse: a header global-allowed-response-headers does not list, an invalid name or value, or a
    ConfigMap of another namespace deny the location (503) with a warning naming the Ingress and annotation."""
    cases = [
        ({"X-Not-Listed": "1"}, "X-Allowed", "X-Not-Listed is not allowed"),
        ({"X Bad": "1"}, "X Bad", "header name 'X Bad' is not valid"),
        ({"X-Allowed": "line\nbreak"}, "X-Allowed", "the value of header X-Allowed is not valid"),
    ]
    for data, allowed, expected in cases:
        snap = world(annotated("web", rule(HOST, path("/", "echo")), custom_headers="headers"),
                     config_map("headers", data), controller(global_allowed_response_headers=allowed))
        assert outcome(snap).status == 503, data
        assert any(m.startswith("web: annotation custom-headers:") and expected in m for m in messages(snap)), \
            (expected, messages(snap))
    snap = world(annotated("web", rule(HOST, path("/", "echo")), custom_headers="elsewhere/headers"),
                 config_map("headers", {"X-Allowed": "1"}, namespace="elsewhere"),
                 controller(global_allowed_response_headers="X-Allowed"))
    assert outcome(snap).status == 503
    assert any("another namespace" in m for m in messages(snap))
    snap = world(annotated("web", rule(HOST, path("/", "echo")), custom_headers="a/b/c"))
    assert outcome(snap).status == 503


def test_a_configmap_that_appears_later_is_used_by_the_incremental_builder():
    """The Ingress is parsed again when the ConfigMap it names appears or changes."""
    ingress = annotated("web", rule(HOST, path("/", "echo")), custom_headers="headers")
    allowed = controller(global_allowed_response_headers="X-A")
    builder = Builder()
    first = builder.build(world(ingress, allowed), CONTROLLER)
    later = world(ingress, allowed, config_map("headers", {"X-A": "1"}))
    second = builder.build(later, CONTROLLER)
    assert second.checksum != first.checksum
    assert second.checksum == build(later, CONTROLLER).checksum
    changed = world(ingress, allowed, config_map("headers", {"X-A": "2"}))
    assert builder.build(changed, CONTROLLER).checksum == build(changed, CONTROLLER).checksum != second.checksum


def test_auth_proxy_set_headers_are_sent_to_the_auth_service():
    """auth.go "should set proxy_set_header 'My-Custom-Header' '42' when auth-proxy-set-headers is set": the
    ConfigMap's headers go to the auth service (values may use auth-url's nginx variables)."""
    snap = world(annotated("ext", rule(HOST, path("/", "echo")), auth_url=AUTH,
                           auth_proxy_set_headers="default/auth-headers"),
                 config_map("auth-headers", {"My-Custom-Header": "42", "X-Host": "$host"}))
    auth = auths(snap)[("ext", "/")]
    assert auth is not None
    assert [(name, template.render(request(), "/")) for name, template in auth.set_headers] == [
        (b"My-Custom-Header", "42"), (b"X-Host", HOST)]
    assert auth.set_names == frozenset({b"my-custom-header", b"x-host"})


def test_auth_proxy_set_headers_fail_closed():
    """authreq.Parse: a missing ConfigMap, one of another namespace, or an invalid header name deny the location
    (503); so does an nginx variable we do not understand."""
    for value, objects in (("default/missing", ()),
                           ("other/auth-headers", (config_map("auth-headers", {"A": "1"}, namespace="other"),)),
                           ("auth-headers", (config_map("auth-headers", {"Bad Name": "1"}),)),
                           ("auth-headers", (config_map("auth-headers", {"A": "$upstream_addr"}),))):
        snap = world(annotated("ext", rule(HOST, path("/", "echo")), auth_url=AUTH, auth_proxy_set_headers=value),
                     *objects)
        assert go(snap, "/").status == 503, value
        assert any(m.startswith("ext: annotation auth-proxy-set-headers:") for m in
                   [f"{w.name}: {w.message}" for w in build(snap, Settings()).warnings]), value


def same_config(snap: Any) -> None:
    assert Builder().build(snap, CONTROLLER).checksum == build(snap, CONTROLLER).checksum


GLOBAL = "http://auth.svc.cluster.local/global"


def test_global_auth_protects_ingresses_without_their_own():
    """configmap.md "global-auth-url" and annotations.md "Global External Authentication" (the template's
    shouldApplyGlobalAuth): every Ingress without its own auth-url gets the global auth with its companions;
    an Ingress's own auth-url wins, and enable-global-auth "false" opts out."""
    snap = world(annotated("plain", rule(HOST, path("/a", "echo"))),
                 annotated("own", rule(HOST, path("/b", "echo")), auth_url=AUTH),
                 annotated("out", rule(HOST, path("/c", "echo")), enable_global_auth="false"),
                 controller(global_auth_url=GLOBAL, global_auth_method="POST",
                            global_auth_response_headers="X-User", global_auth_signin="http://$host/start"))
    config = build(snap, CONTROLLER)
    found = {route.ingress: route.policy.auth if route.policy is not None else None for route in config.routes()
             if route.path}
    plain, own = found["plain"], found["own"]
    assert plain is not None and own is not None and found["out"] is None
    assert plain.url.render(request(), "/") == GLOBAL and plain.method == "POST"
    assert plain.response_headers == (b"X-User",) and plain.signin is not None
    assert own.url.render(request(), "/") == AUTH and own.method == "" and own.response_headers == ()
    assert not [m for m in messages(snap) if "global" in m]
    same_config(snap)


def test_a_bad_global_auth_url_fails_closed():
    """ingress-nginx drops an unparsable global-auth-url with a warning ("Global auth location denied"); pyngress
    refuses (503) the Ingresses it would protect instead of serving them unprotected (a documented difference);
    an Ingress with its own auth-url or enable-global-auth "false" is not concerned."""
    snap = world(annotated("plain", rule(HOST, path("/a", "echo"))),
                 annotated("out", rule(HOST, path("/c", "echo")), enable_global_auth="false"),
                 controller(global_auth_url="not a url"))
    assert outcome(snap, "/a").status == 503
    assert outcome(snap, "/c").status == 200
    assert any("global-auth-url" in m and "503" in m for m in messages(snap))


def test_no_auth_locations_skip_authentication():
    """configmap.md "no-auth-locations" (default "/.well-known/acme-challenge"; the template's
    isLocationInLocationList, a path prefix): those Ingress paths ask neither auth-url, the global auth, nor basic
    auth; a broken auth configuration still answers 503 there (ingress-nginx's denied location)."""
    from .test_nginx_auth import authed, secret
    ingress = authed("basic")
    ingress["spec"]["rules"][0]["http"]["paths"].append(
        {"path": "/.well-known/acme-challenge/", "pathType": "Prefix",
         "backend": {"service": {"name": "echo", "port": {"number": 80}}}})
    snap = world(ingress, secret("basic-auth", auth="foo:{PLAIN}bar"))
    assert outcome(snap, "/private").status == 401
    assert outcome(snap, "/.well-known/acme-challenge/token").status == 200
    snap = world(ingress, secret("basic-auth", auth="foo:{PLAIN}bar"), controller(no_auth_locations="/public"))
    assert outcome(snap, "/.well-known/acme-challenge/token").status == 401
    broken = world(ingress)  # the Secret missing: denied, exempt paths included
    assert outcome(broken, "/.well-known/acme-challenge/token").status == 503
    auth_url = annotated("ext", rule(HOST, path("/", "echo"), path("/.well-known/acme-challenge", "echo")),
                         auth_url=AUTH)
    found = auths(world(auth_url))
    assert found[("ext", "/")] is not None and found[("ext", "/.well-known/acme-challenge")] is None


# ------------------------------------------------------------------------------- the ConfigMap key proxy-set-headers

def test_proxy_set_headers_are_set_on_every_upstream_request():
    """configmap.md "proxy-set-headers" and docs/examples/customization/custom-headers (the controller ConfigMap names
    "ingress-nginx/custom-headers"; its headers are "include[d] in all requests flowing from nginx to the backends"
    as nginx.tmpl's `proxy_set_header`, so a client's field of the same name is replaced): every Ingress route, a
    defaultBackend's too, whatever its own annotations."""
    headers = config_map("custom-headers", {"X-Using-Nginx-Controller": "true", "X-Different-Name": "true"},
                         namespace="ingress-nginx")
    snap = world(annotated("plain", rule(HOST, path("/a", "echo")), default={"service": {
                     "name": "other", "port": {"number": 80}}}),
                 annotated("own", rule(HOST, path("/b", "echo")), x_forwarded_prefix="/x", rewrite_target="/"),
                 headers, controller(proxy_set_headers="ingress-nginx/custom-headers"))
    config = build(snap, CONTROLLER)
    assert config.global_config is not None
    assert config.global_config.upstream_headers == (("X-Different-Name", "true"), ("X-Using-Nginx-Controller", "true"))
    for target in ("/a", "/b", "/elsewhere"):
        seen = send(config, target, host=HOST, ingress=True, headers={"X-Different-Name": "client"})
        assert seen.status == 200, target
        assert seen.request_headers["X-Using-Nginx-Controller"] == "true", target
        assert seen.request_headers["X-Different-Name"] == "true", target  # replaced, not added
    assert not [m for m in messages(snap) if "proxy-set-headers" in m]
    same_config(snap)


def test_proxy_set_headers_changes_apply_and_a_bare_name_is_the_controller_namespace():
    """custom-headers README: the ConfigMap is read when it changes (ingress-nginx needed a restart: its caveat);
    the incremental builder reads it again when it appears or changes."""
    settings = controller(proxy_set_headers="custom-headers")  # bare: the --configmap's namespace
    builder = Builder()
    missing = world(annotated("web", rule(HOST, path("/", "echo"))), settings)
    first = builder.build(missing, CONTROLLER)
    assert first.checksum == build(missing, CONTROLLER).checksum
    assert "controller: key proxy-set-headers: ConfigMap ingress-nginx/custom-headers not found; no headers added " \
           "to upstream requests" in messages(missing)
    assert "X-A" not in send(first, "/", host=HOST, ingress=True).request_headers
    for value in ("1", "2"):
        later = world(annotated("web", rule(HOST, path("/", "echo"))), settings,
                      config_map("custom-headers", {"X-A": value}, namespace="ingress-nginx"))
        config = builder.build(later, CONTROLLER)
        assert config.checksum == build(later, CONTROLLER).checksum
        assert send(config, "/", host=HOST, ingress=True).request_headers["X-A"] == value


def test_proxy_set_headers_leaves_out_what_it_cannot_send():
    """Not a security feature (ingress-nginx warns and adds nothing for a missing ConfigMap): a header pyngress
    cannot send as nginx would (an nginx variable, the proxy's own Host or framing fields, a bad name) is left out
    with a warning naming the ConfigMap and the header; the others are sent."""
    headers = config_map("custom-headers", {"X-Request-Start": "t=${msec}", "Host": "other", "Bad Name": "x",
                                            "Content-Length": "1", "X-Ok": "yes"}, namespace="ingress-nginx")
    snap = world(annotated("web", rule(HOST, path("/", "echo"))), headers,
                 controller(proxy_set_headers="ingress-nginx/custom-headers"))
    seen = send(build(snap, CONTROLLER), "/", host=HOST, ingress=True)
    assert seen.status == 200 and seen.request_headers["X-Ok"] == "yes"
    assert "X-Request-Start" not in seen.request_headers
    problems = [m for m in messages(snap) if "proxy-set-headers" in m]
    assert len(problems) == 4 and all("ConfigMap ingress-nginx/custom-headers" in m for m in problems)
    assert any("X-Request-Start has an nginx variable" in m for m in problems)
    bad = world(annotated("web", rule(HOST, path("/", "echo"))), controller(proxy_set_headers="a/b/c"))
    assert [m for m in messages(bad) if "proxy-set-headers" in m] == [
        "controller: key proxy-set-headers: 'a/b/c' is not name or namespace/name; nothing kept"]
    assert send(build(bad, CONTROLLER), "/", host=HOST, ingress=True).status == 200
