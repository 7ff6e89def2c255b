"""Path semantics: the Kubernetes Ingress documentation's example table, then rule-path validation."""

from __future__ import annotations

import pytest

from proxy.routing.build import build
from proxy.routing.model import PATH_DEFAULT_BACKEND
from proxy.settings import Settings

from .objects import backend, backend_world, ingress, path, route_for, rule, served, snapshot

SETTINGS = Settings()

# (rules as (pathType, path), request path, the (pathType, path) that must answer or None).
# From https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
K8S_EXAMPLES = [
    ([("Prefix", "/")], "/", ("Prefix", "/")),
    ([("Prefix", "/")], "/anything/at/all", ("Prefix", "/")),
    ([("Exact", "/foo")], "/foo", ("Exact", "/foo")),
    ([("Exact", "/foo")], "/bar", None),
    ([("Exact", "/foo")], "/foo/", None),
    ([("Exact", "/foo/")], "/foo", None),
    ([("Exact", "/foo/")], "/foo/", ("Exact", "/foo/")),
    ([("Prefix", "/foo")], "/foo", ("Prefix", "/foo")),
    ([("Prefix", "/foo")], "/foo/", ("Prefix", "/foo")),
    ([("Prefix", "/foo/")], "/foo", ("Prefix", "/foo/")),
    ([("Prefix", "/foo/")], "/foo/", ("Prefix", "/foo/")),
    ([("Prefix", "/aaa/bb")], "/aaa/bbb", None),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb", ("Prefix", "/aaa/bbb")),
    ([("Prefix", "/aaa/bbb/")], "/aaa/bbb", ("Prefix", "/aaa/bbb/")),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb/", ("Prefix", "/aaa/bbb")),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", ("Prefix", "/aaa/bbb")),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),
    ([("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", ("Prefix", "/aaa")),
    ([("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/aaa/bbb", ("Prefix", "/aaa/bbb")),
    ([("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/ccc", ("Prefix", "/")),
    ([("Prefix", "/aaa")], "/ccc", None),
    ([("Prefix", "/foo"), ("Exact", "/foo")], "/foo", ("Exact", "/foo")),
    ([("Exact", "/foo"), ("Prefix", "/foo")], "/foo", ("Exact", "/foo")),
    ([("Prefix", "/foo"), ("Exact", "/foo")], "/foo/bar", ("Prefix", "/foo")),
    # ImplementationSpecific is served as Prefix.
    ([("ImplementationSpecific", "/aaa")], "/aaa/x", ("ImplementationSpecific", "/aaa")),
    ([("ImplementationSpecific", "/aaa")], "/aaaa", None),
    # Longest match, whatever order the rules were written in.
    ([("Prefix", "/aaa/bbb"), ("Prefix", "/aaa"), ("Prefix", "/")], "/aaa/bbb/c", ("Prefix", "/aaa/bbb")),
    # Paths are case-sensitive.
    ([("Exact", "/Foo")], "/foo", None),
    ([("Prefix", "/Foo")], "/foo/x", None),
]


def _config_for(rules: list[tuple[str, str]], *, host: str | None):
    paths = [path(p, f"svc{index}", 80, path_type=kind) for index, (kind, p) in enumerate(rules)]
    services = backend_world(*(f"svc{index}" for index in range(len(rules))))
    return build(snapshot(ingress("docs", rule(host, *paths)), *services), SETTINGS)


@pytest.mark.parametrize("host", ["example.com", None], ids=["host-rule", "hostless-rule"])
@pytest.mark.parametrize("rules, request_path, expected", K8S_EXAMPLES)
def test_kubernetes_documentation_examples(rules, request_path, expected, host):
    config = _config_for(rules, host=host)
    assert config.warnings == ()
    route = route_for(config, "example.com", request_path)
    if expected is None:
        assert route is None
    else:
        assert route is not None
        assert (route.path_type, route.path) == expected
        # Each rule has its own Service, so the cluster proves which rule answered.
        assert route.cluster == f"default/svc{rules.index(expected)}:80"


def test_unmatched_path_goes_to_default_backend():
    obj = ingress("docs", rule("example.com", path("/aaa", "svc0")), default=backend("fallback", 80))
    config = build(snapshot(obj, *backend_world("svc0", "fallback")), SETTINGS)
    route = route_for(config, "example.com", "/ccc")
    assert route is not None and route.path_type == PATH_DEFAULT_BACKEND and route.path == ""
    assert route.cluster == "default/fallback:80"
    assert route_for(config, "example.com", "/aaa/x").cluster == "default/svc0:80"


@pytest.mark.parametrize(
    "rule_path, path_type, request_path, matches",
    [
        # ImplementationSpecific paths are not validated by the API: dot segments are resolved here.
        ("/public/../admin", "ImplementationSpecific", "/admin/x", True),
        ("/public/../admin", "ImplementationSpecific", "/public/x", False),
        ("/a/./b", "Prefix", "/a/b/c", True),
        ("//a//b", "Prefix", "/a/b", True),
        ("/%7Euser", "Exact", "/~user", True),
        ("/~user", "Exact", "/%7euser", True),
    ],
)
def test_rule_paths_are_normalized_like_requests(rule_path, path_type, request_path, matches):
    obj = ingress("n", rule("h.test", path(rule_path, path_type=path_type)))
    config = build(snapshot(obj, *backend_world("web")), SETTINGS)
    assert config.warnings == ()
    route = route_for(config, "h.test", request_path)
    assert (route is not None) is matches
    if matches:
        assert route.path == rule_path  # the route shows the path as written


def test_empty_implementation_specific_path_means_everything():
    obj = ingress("n", rule("h.test", path(None, path_type="ImplementationSpecific")))
    config = build(snapshot(obj, *backend_world("web")), SETTINGS)
    assert config.warnings == ()
    assert served(config, "h.test", "/any/thing") == ("n", "/", "ImplementationSpecific")


@pytest.mark.parametrize(
    "entry, fragment",
    [
        (path("/a", path_type=None), "pathType is missing"),
        (path("/a", path_type="Regex"), "pathType 'Regex'"),
        (path("a/b"), "must start with '/'"),
        (path(None, path_type="Prefix"), "path is missing"),
        (path(None, path_type="Exact"), "path is missing"),
        (path("/../etc"), "cannot be normalized"),
        (path("/a%zz"), "cannot be normalized"),
        (path("/a%00b", path_type="ImplementationSpecific"), "cannot be normalized"),
        (path("/a b"), "whitespace or control characters"),
        (path("/a\x00b", path_type="Exact"), "whitespace or control characters"),
        (path("/a\nb", path_type="ImplementationSpecific"), "whitespace or control characters"),
    ],
)
def test_invalid_path_is_skipped_with_warning_and_the_rest_still_serves(entry, fragment):
    good = path("/ok", "web")
    config = build(snapshot(ingress("n", rule("h.test", entry, good)), *backend_world("web")), SETTINGS)
    assert [(w.kind, w.namespace, w.name) for w in config.warnings] == [("Ingress", "default", "n")]
    assert fragment in config.warnings[0].message
    assert "spec.rules[0].http.paths[0]" in config.warnings[0].message
    assert served(config, "h.test", "/ok") == ("n", "/ok", "Prefix")
    assert [r.path for r in config.table.routes()] == ["/ok"]


@pytest.mark.parametrize("order", ["prefix-first", "implementation-specific-first"])
def test_prefix_wins_over_implementation_specific_at_the_same_path(order):
    prefix = path("/api", "prefix-svc", path_type="Prefix")
    specific = path("/api/", "specific-svc", path_type="ImplementationSpecific")
    entries = (prefix, specific) if order == "prefix-first" else (specific, prefix)
    world = backend_world("prefix-svc", "specific-svc")
    config = build(snapshot(ingress("n", rule("h.test", *entries)), *world), SETTINGS)
    assert route_for(config, "h.test", "/api/v1").cluster == "default/prefix-svc:80"
    assert len(config.warnings) == 1
    message = config.warnings[0].message
    assert "'/api/' (ImplementationSpecific)" in message and "'/api' (Prefix)" in message
    assert "default/specific-svc:80" not in config.clusters


def test_prefix_in_newer_ingress_still_beats_older_implementation_specific():
    specific = path("/api", "a", path_type="ImplementationSpecific")
    old = ingress("old", rule("h.test", specific), created="2020-01-01T00:00:00Z")
    new = ingress("new", rule("h.test", path("/api", "b", path_type="Prefix")), created="2023-01-01T00:00:00Z")
    config = build(snapshot(old, new, *backend_world("a", "b")), SETTINGS)
    assert served(config, "h.test", "/api") == ("new", "/api", "Prefix")
    [warning] = config.warnings
    assert (warning.name, "Ingress default/new" in warning.message) == ("old", True)


def test_exact_and_prefix_at_the_same_path_coexist_without_warning():
    config = build(
        snapshot(
            ingress("n", rule("h.test", path("/x", "a", path_type="Exact"), path("/x", "b"))),
            *backend_world("a", "b"),
        ),
        SETTINGS,
    )
    assert config.warnings == ()
    assert route_for(config, "h.test", "/x").cluster == "default/a:80"
    assert route_for(config, "h.test", "/x/").cluster == "default/b:80"


def test_trailing_slash_variants_of_one_prefix_are_the_same_path():
    obj = ingress("n", rule("h.test", path("/foo", "a"), path("/foo/", "b")))
    config = build(snapshot(obj, *backend_world("a", "b")), SETTINGS)
    assert served(config, "h.test", "/foo/x") == ("n", "/foo", "Prefix")
    [warning] = config.warnings
    assert "'/foo/' (Prefix)" in warning.message and "this Ingress" in warning.message
