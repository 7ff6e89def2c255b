"""ingress-nginx annotations at the builder level: Ingresses in, a table out, requests played through it.

Each test names the ingress-nginx e2e test (test/e2e/annotations/*.go) or documentation section
(docs/user-guide/...) whose behaviour it reproduces. Requests go through the built table and the
rule's filters with `harness.send(..., ingress=True)`; the proxy itself is exercised in
tests/server/test_nginx_annotations.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.table import Choice, slot_routes
from proxy.settings import Settings

from .gateway.harness import Outcome, send
from .gateway.objects import INFRA, backend, base_objects, gateway, http_route, listener, match, parent
from .gateway.objects import rule as route_rule
from .gateway.objects import snapshot as gateway_snapshot
from .objects import backend_world, ingress, path, rule, snapshot
from .oracle import NotModelled, Oracle

HOST = "rewrite.bar.com"
PREFIX = "nginx.ingress.kubernetes.io/"


def annotated(name: str, *rules: dict[str, Any], created: str = "2024-01-01T00:00:00Z",
              default: dict[str, Any] | None = None, **annotations: str) -> dict[str, Any]:
    """An Ingress with ingress-nginx annotations (keyword names with "_" for "-", under nginx's prefix)."""
    obj = ingress(name, *rules, created=created, default=default)
    obj["metadata"]["annotations"] = {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}
    return obj


def world(*objects: dict[str, Any], services: tuple[str, ...] = ("echo", "main", "canary", "other")) -> Snapshot:
    return snapshot(*objects, *backend_world(*services))


def go(snap: Snapshot, target: str, *, host: str = HOST, **options: Any) -> Outcome:
    return send(build(snap, Settings()), target, host=host, ingress=True, **options)


def warnings_of(snap: Snapshot) -> list[str]:
    return [f"{w.name}: {w.message}" for w in build(snap, Settings()).warnings]


def same_as_incremental(snap: Snapshot) -> None:
    """The incremental builder makes the same table (checksum and warnings) from scratch."""
    fresh = build(snap, Settings())
    again = Builder().build(snap, Settings())
    assert (again.checksum, again.warnings) == (fresh.checksum, fresh.warnings)


# ---------------------------------------------------------------------------------------------- rewrite-target

def test_rewrite_target_replaces_the_path_sent_upstream():
    """rewrite.go "should write rewrite logs": rewrite-target "/" on /something sends "/" upstream."""
    snap = world(annotated("a", rule(HOST, path("/something", "echo")), rewrite_target="/"))
    outcome = go(snap, "/something")
    assert (outcome.status, outcome.service, outcome.path) == (200, "echo", "/")
    same_as_incremental(snap)


def test_rewrite_target_with_capture_groups():
    """rewrite.go "should allow for custom rewrite parameters": /foo/bar/(.+) with /new/backend/$1."""
    snap = world(annotated("regex", rule(HOST, path("/foo/bar/(.+)", "echo", path_type="ImplementationSpecific")),
                           use_regex="true", rewrite_target="/new/backend/$1"))
    outcome = go(snap, "/foo/bar/bar?x=1")
    assert (outcome.status, outcome.path) == (200, "/new/backend/bar")
    assert go(snap, "/FOO/BAR/baz").path == "/new/backend/baz"  # ~*: case-insensitive
    assert go(snap, "/foo/bar").status == 404
    same_as_incremental(snap)


def test_rewrite_group_documentation_example():
    """docs/examples/rewrite: /something(/|$)(.*) with /$2."""
    snap = world(annotated("rewrite", rule(HOST, path("/something(/|$)(.*)", "echo",
                                                          path_type="ImplementationSpecific")),
                           use_regex="true", rewrite_target="/$2"))
    for request, forwarded in (("/something", "/"), ("/something/", "/"), ("/something/new", "/new")):
        assert go(snap, request).path == forwarded, request
    assert go(snap, "/other").status == 404


def test_a_rewrite_makes_every_path_of_the_host_a_regex_and_longest_match_still_wins():
    """rewrite.go "should use correct longest path match": a plain /.well-known/acme/challenge next to a
    rewritten "/" keeps its path (both become ~* locations, the longer first)."""
    snap = world(ingress("kube-lego", rule(HOST, path("/.well-known/acme/challenge", "other"))),
                 annotated("rewrite-index", rule(HOST, path("/", "echo")), rewrite_target="/new/backend"))
    outcome = go(snap, "/.well-known/acme/challenge")
    assert (outcome.service, outcome.path) == ("other", "/.well-known/acme/challenge")
    assert (go(snap, "/anything").service, go(snap, "/anything").path) == ("echo", "/new/backend")
    same_as_incremental(snap)


def test_use_regex_turns_plain_paths_of_the_host_into_case_insensitive_prefix_regexes():
    """rewrite.go "should use ~* location modifier if regex annotation is present": /foo (plain) and
    /foo.+ (use-regex + rewrite) on one host."""
    snap = world(ingress("foo", rule(HOST, path("/foo", "other"))),
                 annotated("regex", rule(HOST, path("/foo.+", "echo", path_type="ImplementationSpecific")),
                           use_regex="true", rewrite_target="/new/backend"))
    foo = go(snap, "/foo")
    assert (foo.service, foo.path) == ("other", "/foo")
    bar = go(snap, "/foo/bar")
    assert (bar.service, bar.path) == ("echo", "/new/backend")
    assert go(snap, "/FOO").service == "other"  # case-insensitive on a regex host
    # nginx's quirk: a Prefix path is now a prefix of the text, not of path segments.
    assert (go(snap, "/foo").service, go(snap, "/fo").status) == ("other", 404)
    # Another host keeps Kubernetes semantics.
    other = world(ingress("foo", rule("plain.test", path("/foo", "other"))))
    assert go(other, "/FOO", host="plain.test").status == 404
    assert go(other, "/foobar", host="plain.test").status == 404


def test_a_regex_beats_a_longer_literal_path_as_documented():
    """rewrite.go "should fail to use longest match for documented warning" (ingress-path-matching.md,
    "Warning"): /foo/bar/bar loses to /foo/bar/[a-z]{3}, which nginx lists first."""
    snap = world(ingress("foo", rule(HOST, path("/foo/bar/bar", "other"))),
                 annotated("regex", rule(HOST, path("/foo/bar/[a-z]{3}", "echo", path_type="ImplementationSpecific")),
                           use_regex="true", rewrite_target="/new/backend"))
    outcome = go(snap, "/foo/bar/bar")
    assert (outcome.service, outcome.path) == ("echo", "/new/backend")


def test_path_priority_documentation_example():
    """ingress-path-matching.md "Path Priority": /foo/bar and /foo/bar/ (Prefix, two Services) and
    /foo/bar/(.+) with rewrite-target /$1 on a third."""
    snap = world(ingress("test-ingress-1", rule("test.com", path("/foo/bar", "main"), path("/foo/bar/", "other"))),
                 annotated("test-ingress-2", rule("test.com", path("/foo/bar/(.+)", "canary",
                                                                   path_type="ImplementationSpecific")),
                           rewrite_target="/$1", created="2024-02-01T00:00:00Z"))
    assert go(snap, "/foo/bar/1", host="test.com").service == "canary"
    assert go(snap, "/foo/bar/1", host="test.com").path == "/1"
    assert go(snap, "/foo/bar/", host="test.com").service == "other"
    assert go(snap, "/foo/bar", host="test.com").service == "main"
    same_as_incremental(snap)


def test_a_rewrite_target_equal_to_the_path_changes_nothing():
    """template.go needsRewrite: a target equal to the location path is no rewrite (and no regex host)."""
    snap = world(annotated("same", rule(HOST, path("/app", "echo")), rewrite_target="/app"))
    assert go(snap, "/app/x").path == "/app/x"
    assert go(snap, "/APP").status == 404  # still Kubernetes matching
    assert build(snap, Settings()).table.hosts[HOST].regex == ()


def test_a_path_that_is_not_a_regex_is_matched_as_text_with_a_warning():
    """Bad input: use-regex with a path that does not compile keeps the route, matched literally."""
    snap = world(annotated("broken", rule(HOST, path("/a(b", "echo", path_type="ImplementationSpecific"),
                                          path("/ok", "other")), use_regex="true"))
    assert go(snap, "/a(b/c").service == "echo"
    assert go(snap, "/ok").service == "other"
    assert any("broken: path '/a(b' is not a valid regular expression" in w for w in warnings_of(snap))


def test_the_oracle_refuses_snapshots_with_what_it_does_not_model():
    """tests/routing/oracle.py models Kubernetes Ingress semantics only: it must never silently judge these."""
    snap = world(annotated("a", rule(HOST, path("/x", "echo")), use_regex="true"))
    with pytest.raises(NotModelled):
        Oracle(snap, Settings())


def test_an_invalid_rewrite_target_disables_the_rewrite_only():
    """annotations/rewrite main.go: rewrite-target must be RegexPathWithCapture; else no rewrite."""
    snap = world(annotated("bad", rule(HOST, path("/x", "echo")), rewrite_target="/a b?c"))
    outcome = go(snap, "/x/y")
    assert (outcome.status, outcome.path) == (200, "/x/y")
    assert any("bad: annotation nginx.ingress.kubernetes.io/rewrite-target" in w and "no rewrite" in w
               for w in warnings_of(snap))


def test_x_forwarded_prefix_is_sent_with_a_rewrite():
    """xforwardedprefix.go: set with rewrite-target; an empty value sends nothing."""
    snap = world(annotated("xfp", rule(HOST, path("/", "echo")), x_forwarded_prefix="/test/value",
                           rewrite_target="/foo"),
                 annotated("noxfp", rule("noxfp.baz.com", path("/", "echo")), x_forwarded_prefix="",
                           rewrite_target="/foo"))
    headers = go(snap, "/", headers={"X-Forwarded-Prefix": "/spoofed"}).request_headers
    assert headers["X-Forwarded-Prefix"] == "/test/value"
    assert "X-Forwarded-Prefix" not in go(snap, "/", host="noxfp.baz.com").request_headers
    alone = world(annotated("alone", rule(HOST, path("/", "echo")), x_forwarded_prefix="/p"))
    assert "X-Forwarded-Prefix" not in go(alone, "/").request_headers  # template.go: only in the rewrite branch
    assert any("x-forwarded-prefix has no effect without rewrite-target" in w for w in warnings_of(alone))


# ---------------------------------------------------------------------------------------------- redirects

def test_app_root_redirects_slash_only():
    """approot.go "should redirect to /foo": 302 to http://approot.bar.com/foo."""
    host = "approot.bar.com"
    snap = world(annotated("approot", rule(host, path("/", "echo")), app_root="/foo"))
    outcome = go(snap, "/", host=host, headers={"Host": host})
    assert (outcome.status, outcome.location) == (302, "http://approot.bar.com/foo")
    assert go(snap, "/foo", host=host).status == 200
    assert go(snap, "/?q=1", host=host, headers={"Host": "approot.bar.com:8080"}).location == \
        "http://approot.bar.com:8080/foo"  # $http_host, as sent
    bad = world(annotated("approot", rule(host, path("/", "echo")), app_root="http://x/foo"))
    assert go(bad, "/", host=host).status == 200
    assert any("app-root" in w and "no app-root redirect" in w for w in warnings_of(bad))


def test_permanent_redirect_and_its_code():
    """redirect.go "should respond with a standard redirect code" and "... custom redirect code"."""
    url = "http://redirect.example.com"
    snap = world(annotated("r", rule("redirect", path("/something", "echo")), permanent_redirect=url))
    outcome = go(snap, "/something/x?y=1", host="redirect")
    assert (outcome.status, outcome.location) == (301, url)  # nginx `return 301 URL`: nothing appended
    custom = world(annotated("r", rule("redirect", path("/something", "echo")), permanent_redirect=url,
                             permanent_redirect_code="302"))
    assert go(custom, "/something", host="redirect").status == 302
    code_308 = world(annotated("r", rule("redirect", path("/something", "echo")), permanent_redirect=url,
                               permanent_redirect_code="308"))
    assert go(code_308, "/something", host="redirect").status == 308


def test_redirect_codes_out_of_range_fall_back_and_bad_ones_disable_the_redirect():
    """annotations/redirect/redirect.go: codes outside 300-308 (permanent) / 300-307 (temporal) become
    301 / 302; a code that is not a number is an error and no redirect is made."""
    url = "https://example.com/x"
    out_of_range = world(annotated("r", rule(HOST, path("/", "echo")), permanent_redirect=url,
                                   permanent_redirect_code="400"))
    assert go(out_of_range, "/").status == 301
    assert any("400 is not a redirect code from 300 to 308; 301 used" in w for w in warnings_of(out_of_range))
    temporal = world(annotated("r", rule(HOST, path("/", "echo")), temporal_redirect=url,
                               temporal_redirect_code="308"))
    assert go(temporal, "/").status == 302
    broken = world(annotated("r", rule(HOST, path("/", "echo")), permanent_redirect=url,
                             permanent_redirect_code="abc"), ingress("fine", rule("fine.test", path("/", "other"))))
    assert (go(broken, "/").status, go(broken, "/").service) == (200, "echo")
    assert go(broken, "/", host="fine.test").service == "other"
    assert any("r: annotation nginx.ingress.kubernetes.io/permanent-redirect-code: 'abc' is not an integer; the "
               "redirect is disabled" in w for w in warnings_of(broken))
    bad_url = world(annotated("r", rule(HOST, path("/", "echo")), permanent_redirect="ftp://x"))
    assert go(bad_url, "/").status == 200


def test_temporal_redirect_wins_over_permanent_and_over_the_https_redirect():
    """redirect.go Parse: temporal first; nginx's `return` runs before ingress-nginx's Lua HTTPS redirect."""
    obj = annotated("r", rule(HOST, path("/", "echo")), temporal_redirect="https://t.example/",
                    permanent_redirect="https://p.example/", temporal_redirect_code="307")
    obj["spec"]["tls"] = [{"hosts": [HOST], "secretName": "cert"}]
    snap = world(obj)
    outcome = go(snap, "/page")
    assert (outcome.status, outcome.location) == (307, "https://t.example/")


# ---------------------------------------------------------------------------------------------- canary

def main_and_canary(**canary: str) -> Snapshot:
    return world(ingress("main", rule("foo", path("/", "main"))),
                 annotated("canary", rule("foo", path("/", "canary")), created="2024-03-01T00:00:00Z",
                           canary="true", **canary))


def pod(snap: Snapshot, *, headers: dict[str, str] | None = None, draw: float = 0.0) -> str:
    return go(snap, "/info", host="foo", headers=headers, draw=draw).service


def test_canary_by_header_always_and_never():
    """canary.go "when canaried by header with no value": always → canary, never → main, other → main."""
    snap = main_and_canary(canary_by_header="CanaryByHeader")
    assert pod(snap, headers={"CanaryByHeader": "always"}) == "canary"
    assert pod(snap, headers={"canarybyheader": "always"}) == "canary"  # header names ignore case
    assert pod(snap, headers={"CanaryByHeader": "never"}) == "main"
    assert pod(snap, headers={"CanaryByHeader": "badhearder"}) == "main"
    assert pod(snap) == "main"
    same_as_incremental(snap)


def test_canary_by_header_value():
    """canary.go "when canaried by header with value": DoCanary → canary; always, never, other → main."""
    snap = main_and_canary(canary_by_header="CanaryByHeader", canary_by_header_value="DoCanary")
    assert pod(snap, headers={"CanaryByHeader": "DoCanary"}) == "canary"
    for value in ("always", "never", "otherheadervalue"):
        assert pod(snap, headers={"CanaryByHeader": value}) == "main", value


def test_canary_by_header_pattern_and_value_precedence():
    """canary.go "when canaried by header with value and pattern": the pattern matches anywhere; a value,
    when given, wins over the pattern."""
    snap = main_and_canary(canary_by_header="CanaryByHeader", canary_by_header_pattern="^Do[A-Z][a-z]+y$")
    assert pod(snap, headers={"CanaryByHeader": "DoCanary"}) == "canary"
    assert pod(snap, headers={"CanaryByHeader": "Docanary"}) == "main"
    unanchored = main_and_canary(canary_by_header="H", canary_by_header_pattern="beta")
    assert pod(unanchored, headers={"H": "x-beta-y"}) == "canary"  # ngx.re.match: unanchored
    both = main_and_canary(canary_by_header="CanaryByHeader", canary_by_header_value="DoCanary",
                           canary_by_header_pattern="^Do[A-Z][a-z]+y$")
    assert pod(both, headers={"CanaryByHeader": "DoCananry"}) == "main"


def test_a_header_pattern_that_fails_sends_requests_with_the_header_to_main():
    """canary.go "should routes to mainline upstream when the given Regex causes error" (with a cookie
    set to always too); requests without the header still follow the cookie."""
    snap = main_and_canary(canary_by_header="CanaryByHeader", canary_by_header_pattern="[][**da?$&*",
                           canary_by_cookie="CanaryByCookie")
    assert pod(snap, headers={"CanaryByHeader": "DoCanary", "Cookie": "CanaryByCookie=always"}) == "main"
    assert pod(snap, headers={"Cookie": "CanaryByCookie=always"}) == "canary"
    assert any("canary: annotation nginx.ingress.kubernetes.io/canary-by-header-pattern" in w
               for w in warnings_of(snap))


def test_canary_by_cookie_and_its_precedence_after_the_header():
    """canary.go "when canaried by cookie" (always, never, other) and "when canaried by header with value
    and cookie" (a header value that does not match falls through to the cookie)."""
    snap = main_and_canary(canary_by_cookie="Canary-By-Cookie")
    assert pod(snap, headers={"Cookie": "Canary-By-Cookie=always"}) == "canary"
    assert pod(snap, headers={"Cookie": "a=1; Canary-By-Cookie=never"}) == "main"
    assert pod(snap, headers={"Cookie": "Canary-By-Cookie=badcookievalue"}) == "main"
    both = main_and_canary(canary_by_header="CanaryByHeader", canary_by_header_value="DoCanary",
                           canary_by_cookie="CanaryByCookie", canary_weight="100")
    assert pod(both, headers={"CanaryByHeader": "otherheadervalue", "Cookie": "CanaryByCookie=always"}) == "canary"
    header_never = main_and_canary(canary_by_header="H", canary_by_cookie="C")
    assert pod(header_never, headers={"H": "never", "Cookie": "C=always"}) == "main"  # never ends it


def test_canary_weight_compiles_to_weighted_backends():
    """canary.go "when canaried by weight": 0 → main only; 100 → canary only; 50 splits; weight 100 of
    total 200 splits; weight equal to the total → canary only."""
    assert {pod(main_and_canary(canary_weight="0"), draw=d) for d in (0.0, 0.5, 0.999)} == {"main"}
    assert {pod(main_and_canary(canary_weight="100"), draw=d) for d in (0.0, 0.5, 0.999)} == {"canary"}
    half = main_and_canary(canary_weight="50")
    assert (pod(half, draw=0.2), pod(half, draw=0.7)) == ("main", "canary")
    total = main_and_canary(canary_weight="100", canary_weight_total="200")
    route = build(total, Settings()).table.hosts["foo"].prefix[""]
    assert [(b.service, b.weight) for b in route.backends.backends] == [("main", 100), ("canary", 100)]
    assert {pod(main_and_canary(canary_weight="200", canary_weight_total="200"), draw=d)
            for d in (0.0, 0.999)} == {"canary"}
    low_total = main_and_canary(canary_weight="10", canary_weight_total="10")
    route = build(low_total, Settings()).table.hosts["foo"].prefix[""]
    assert [b.weight for b in route.backends.backends] == [90, 10]  # balancer.lua: totals below 100 count as 100
    bad = main_and_canary(canary_weight="abc")
    assert {pod(bad, draw=d) for d in (0.0, 0.999)} == {"main"}
    assert any("canary-weight: 'abc' is not an integer; the default 0 used" in w for w in warnings_of(bad))


def test_a_canary_without_a_main_ingress_is_not_served():
    """canary.go "should return 404 status for requests to the canary if no matching ingress is found",
    "Single canary Ingress": a canary alone claims no host (it falls through, here to a catch-all)."""
    snap = world(annotated("canary", rule("foo", path("/", "canary")), canary="true", canary_by_header="H"),
                 ingress("catch-all", default={"service": {"name": "other", "port": {"number": 80}}}))
    assert go(snap, "/", host="foo", headers={"H": "always"}).service == "other"
    assert "foo" not in build(snap, Settings()).table.hosts
    assert any("canary: canary path '/' (Prefix) for host foo not served: no main Ingress" in w
               for w in warnings_of(snap))
    same_as_incremental(snap)
    other_path = world(ingress("main", rule("foo", path("/a", "main"))),
                       annotated("canary", rule("foo", path("/b", "canary")), canary="true", canary_weight="100"))
    assert go(other_path, "/b", host="foo").status == 404


def test_one_canary_per_path_and_the_canary_keeps_the_main_routes_filters():
    """annotations.md "Canary": one canary Ingress per Ingress rule; a canary's other annotations are ignored
    (here its rewrite-target), the main Ingress's apply to canary traffic."""
    snap = world(annotated("main", rule("foo", path("/", "main")), rewrite_target="/rewritten"),
                 annotated("canary", rule("foo", path("/", "canary")), created="2024-03-01T00:00:00Z",
                           canary="true", canary_by_header="H", rewrite_target="/ignored"),
                 annotated("late", rule("foo", path("/", "other")), created="2024-04-01T00:00:00Z",
                           canary="true", canary_weight="100"))
    outcome = go(snap, "/x", host="foo", headers={"H": "always"})
    assert (outcome.service, outcome.path) == ("canary", "/rewritten")
    assert go(snap, "/x", host="foo", draw=0.99).service == "main"  # the later canary's weight is not used
    assert any("late: canary path '/' (Prefix) for host foo not served: another canary Ingress already serves it"
               in w for w in warnings_of(snap))
    slot = build(snap, Settings()).table.hosts["foo"].regex[0][1]
    assert isinstance(slot, Choice) and {r.ingress for r in slot_routes(slot)} == {"main"}


def test_canary_annotations_without_canary_true_are_ignored_with_a_warning():
    """annotations/canary main.go: "configured but not enabled"."""
    snap = world(ingress("main", rule("foo", path("/", "main"))),
                 annotated("other", rule("bar", path("/", "canary")), canary_by_header="H"))
    assert go(snap, "/", host="bar", headers={"H": "always"}).service == "canary"
    assert any("other: annotations canary-by-header need canary: \"true\"" in w for w in warnings_of(snap))


# ---------------------------------------------------------------------------------------------- refused, unknown

@pytest.mark.parametrize("name", ["configuration-snippet", "server-snippet", "auth-snippet", "stream-snippet",
                                  "modsecurity-snippet"])
def test_snippets_are_refused_and_the_ingress_still_served(name):
    """annotations.md "Configuration snippet" et al.: refused on purpose; one warning names the annotation."""
    obj = ingress("snippet", rule(HOST, path("/", "echo")))
    obj["metadata"]["annotations"] = {PREFIX + name: "more_set_headers 'X: y';"}
    snap = world(obj)
    assert go(snap, "/").service == "echo"
    assert warnings_of(snap) == [f"snippet: annotation {PREFIX}{name} is refused: snippets of raw nginx "
                                 "configuration are not supported, on purpose; the Ingress is served without it"]


def test_unknown_annotations_under_either_prefix_get_one_warning_each():
    obj = ingress("unknown", rule(HOST, path("/", "echo")))
    obj["metadata"]["annotations"] = {PREFIX + "proxy-cookie-path": "/ /foo", "pyngress.dev/no-such-thing": "1"}
    assert sorted(warnings_of(world(obj))) == [
        f"unknown: annotation {PREFIX}proxy-cookie-path is not supported; ignored",
        "unknown: annotation pyngress.dev/no-such-thing is not supported; ignored"]


def test_the_pyngress_prefix_is_read_first():
    obj = annotated("a", rule(HOST, path("/x", "echo")), rewrite_target="/nginx")
    obj["metadata"]["annotations"]["pyngress.dev/rewrite-target"] = "/ours"
    assert go(world(obj), "/x").path == "/ours"


def test_a_plain_ingress_route_stays_plain():
    """Hot path: an Ingress without these annotations compiles to exactly the route it did before."""
    table = build(world(ingress("plain", rule(HOST, path("/p", "echo")))), Settings()).table
    route = table.hosts[HOST].prefix["/p"]
    assert route.plain and route.filters is None and route.conditions is None


def test_the_incremental_builder_follows_canaries_and_regex_hosts_as_they_come_and_go():
    """A canary's host is claimed only while a main Ingress names it; a regex host turns back into plain
    matching when its last regex Ingress leaves. Each step equals a fresh build."""
    main = ingress("main", rule("foo", path("/", "main")))
    canary = annotated("canary", rule("foo", path("/", "canary")), created="2024-03-01T00:00:00Z",
                       canary="true", canary_by_header="H")
    regex = annotated("regex", rule("foo", path("/r.*", "other", path_type="ImplementationSpecific")),
                      use_regex="true")
    plain = ingress("plain", rule("foo", path("/p", "echo")))
    steps = [(canary,), (canary, main), (canary, main, regex), (canary, regex, plain), (canary, plain),
             (plain,), (canary, main, plain)]
    builder = Builder()
    for objects in steps:
        snap = world(*objects)
        got, fresh = builder.build(snap, Settings()), build(snap, Settings())
        names = {o["metadata"]["name"] for o in objects}
        assert (got.checksum, got.warnings) == (fresh.checksum, fresh.warnings), names
        served = send(got, "/", host="foo", ingress=True, headers={"H": "always"})
        expected = "canary" if {"main", "canary"} <= names else "main" if "main" in names else ""
        assert served.service == expected, names
        # ~* on every path of a regex host: "/p" then serves "/PX"; otherwise "/" (main) or nothing does.
        fallback = "echo" if {"regex", "plain"} <= names else "main" if "main" in names else ""
        assert send(got, "/PX", host="foo", ingress=True).service == fallback, names


def test_a_canary_shares_its_path_with_http_route_rules_on_the_ingress_port():
    """Gateway API rules with conditions go before the Ingress rules of the same path (README "Gateway
    API", precedence); the canary's rules keep their own order after them."""
    v1, v2, v3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"
    main = ingress("main", rule("a.test", path("/api", v1, 8080)), namespace=INFRA)
    canary = ingress("canary", rule("a.test", path("/api", v2, 8080)), namespace=INFRA, created="2024-02-01T00:00:00Z")
    canary["metadata"]["annotations"] = {PREFIX + "canary": "true", PREFIX + "canary-by-header": "H"}
    route = http_route("gw", route_rule(match("/api", headers=[("x-gw", "yes")]), backends=[backend(v3)]),
                       parents=[parent("edge")], hostnames=["a.test"], created="2024-03-01T00:00:00Z")
    config = build(gateway_snapshot(*base_objects(), gateway("edge", listener("http", 80, namespaces="All")),
                               main, canary, route), Settings(gateways=(f"{INFRA}/edge",)))
    for headers, expected in (({"x-gw": "yes", "H": "always"}, v3), ({"H": "always"}, v2), ({"H": "never"}, v1),
                              ({}, v1)):
        assert send(config, "/api", host="a.test", headers=headers).service == expected, headers
    assert send(config, "/api", host="a.test", headers={"H": "always"}, ingress=True).service == v2


def test_affinity_canary_behavior_sticky_and_legacy():
    """canary.go "canary affinity behavior" (sticky by default, explicit sticky, legacy) and balancer.lua's
    route_to_alternative_balancer: a cookie naming a main pod keeps the main backend (even when the header
    forces the canary); one naming a canary pod goes to the canary only when sticky."""
    from proxy.routing.policies import affinity_prefix

    def snap_with(**canary: str) -> Snapshot:
        return world(annotated("main", rule("foo", path("/", "main")), affinity="cookie", session_cookie_name="Aff"),
                     annotated("canary", rule("foo", path("/", "canary")), created="2024-03-01T00:00:00Z",
                               canary="true", canary_by_header="Force", canary_by_header_value="yes", **canary))

    main_cookie = "aff=" + (affinity_prefix("default", "main", "80") + b"0123").decode()
    canary_cookie = "aff=" + (affinity_prefix("default", "canary", "80") + b"0123").decode()
    for canary in ({}, {"affinity_canary_behavior": "sticky"}):
        snap = snap_with(**canary)
        assert pod(snap, headers={"Cookie": canary_cookie}) == "canary"
        assert pod(snap, headers={"Cookie": main_cookie, "Force": "yes"}) == "main"
        assert pod(snap, headers={"Force": "yes"}) == "canary" and pod(snap) == "main"
        same_as_incremental(snap)
    legacy = snap_with(affinity_canary_behavior="legacy")
    assert pod(legacy, headers={"Cookie": canary_cookie}) == "main"
    assert pod(legacy, headers={"Cookie": main_cookie, "Force": "yes"}) == "main"
    assert pod(legacy, headers={"Force": "yes"}) == "canary"
