"""Several Ingresses on one host: merging, conflicts (oldest wins), defaultBackends, checksums."""

from __future__ import annotations

import itertools

import pytest

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.model import BODY_LIMIT_DEFAULT, PATH_DEFAULT_BACKEND, Route
from proxy.settings import Settings

from .objects import backend, backend_world, endpoint, endpoint_slice, ingress, path, route_for, rule, served, snapshot

SETTINGS = Settings()
OLD = "2021-03-04T05:06:07Z"
NEW = "2023-03-04T05:06:07Z"


def test_ingresses_naming_one_host_merge_into_one_route_set():
    config = build(
        snapshot(
            ingress("api", rule("shop.test", path("/api", "api"))),
            ingress("web", rule("shop.test", path("/", "web"), path("/static", "web", path_type="Exact"))),
            ingress("admin", rule("SHOP.test", path("/admin", "admin")), namespace="ops"),
            *backend_world("api", "web"),
            *backend_world("admin", namespace="ops"),
        ),
        SETTINGS,
    )
    assert config.warnings == ()
    assert list(config.table.hosts) == ["shop.test"]
    assert served(config, "shop.test", "/api/v1") == ("api", "/api", "Prefix")
    assert served(config, "shop.test", "/static") == ("web", "/static", "Exact")
    assert served(config, "shop.test", "/static/x") == ("web", "/", "Prefix")
    assert served(config, "shop.test", "/admin") == ("admin", "/admin", "Prefix")
    assert route_for(config, "shop.test", "/admin").namespace == "ops"
    assert set(config.clusters) == {"default/api:80", "default/web:80", "ops/admin:80"}


@pytest.mark.parametrize(
    "first, second, winner",
    [
        ((OLD, "default", "zzz"), (NEW, "default", "aaa"), "zzz"),  # older wins over name order
        ((NEW, "default", "aaa"), (OLD, "default", "zzz"), "zzz"),  # whichever is listed first
        ((OLD, "default", "b"), (OLD, "default", "a"), "a"),  # same age: namespace/name order
        ((OLD, "beta", "a"), (OLD, "alpha", "z"), "z"),  # namespace sorts before name
        ((OLD, "default", "b"), (None, "default", "a"), "b"),  # no timestamp counts as newest
        (("not a date", "default", "a"), (OLD, "default", "b"), "b"),  # unreadable timestamp likewise
        (("2021-03-04T06:06:07+02:00", "default", "b"), ("2021-03-04T05:06:07Z", "default", "a"), "b"),  # zones
    ],
)
@pytest.mark.parametrize("path_type", ["Prefix", "Exact", "ImplementationSpecific"])
def test_conflicting_path_oldest_wins_and_the_loser_is_warned(first, second, winner, path_type):
    objects = []
    for created, namespace, name in (first, second):
        objects.append(
            ingress(name, rule("h.test", path("/p", name, path_type=path_type)), namespace=namespace, created=created)
        )
        objects.extend(backend_world(name, namespace=namespace))
    config = build(snapshot(*objects), SETTINGS)
    loser = next(n for n in ((first[1], first[2]), (second[1], second[2])) if n[1] != winner)
    winner_ns = next(ns for _, ns, name in (first, second) if name == winner)
    route = route_for(config, "h.test", "/p")
    assert (route.namespace, route.ingress) == (winner_ns, winner)
    [warning] = [w for w in config.warnings if w.kind == "Ingress"]
    assert (warning.namespace, warning.name) == loser
    assert f"Ingress {winner_ns}/{winner}" in warning.message
    assert f"'/p' ({path_type})" in warning.message and "host h.test" in warning.message
    assert set(config.clusters) == {f"{winner_ns}/{winner}:80"}


def test_conflicts_resolve_the_same_whatever_the_snapshot_order():
    objects = [
        ingress("a", rule("h.test", path("/x", "a")), created=NEW),
        ingress("b", rule("h.test", path("/x", "b"), path("/y", "b")), created=OLD),
        ingress("c", rule("h.test", path("/y", "c"), path("/z", "c")), created=OLD),
        *backend_world("a", "b", "c"),
    ]
    results = set()
    for order in itertools.permutations(objects[:3]):
        config = build(snapshot(*order, *objects[3:]), SETTINGS)
        results.add((config.checksum, config.warnings))
        assert served(config, "h.test", "/x")[0] == "b"
        assert served(config, "h.test", "/y")[0] == "b"
        assert served(config, "h.test", "/z")[0] == "c"
    assert len(results) == 1


def test_duplicate_path_within_one_ingress_first_written_wins():
    obj = ingress("n", rule("h.test", path("/x", "a")), rule("h.test", path("/x", "b")))
    config = build(snapshot(obj, *backend_world("a", "b")), SETTINGS)
    assert route_for(config, "h.test", "/x").cluster == "default/a:80"
    [warning] = config.warnings
    assert "this Ingress" in warning.message


def test_same_path_on_different_hosts_is_no_conflict():
    config = build(
        snapshot(
            ingress("a", rule("a.test", path("/x", "a")), created=OLD),
            ingress("b", rule("b.test", path("/x", "b")), created=NEW),
            ingress("c", rule("*.a.test", path("/x", "c")), created=NEW),
            ingress("d", rule(None, path("/x", "d")), created=NEW),
            *backend_world("a", "b", "c", "d"),
        ),
        SETTINGS,
    )
    assert config.warnings == ()
    hosts = ("a.test", "b.test", "w.a.test", "q.test")
    assert [served(config, host, "/x")[0] for host in hosts] == ["a", "b", "c", "d"]


# --- defaultBackend ---------------------------------------------------------------------------


def test_default_backend_serves_unmatched_paths_of_each_host_its_rules_name():
    config = build(
        snapshot(
            ingress("n", rule("a.test", path("/api", "api")), rule("*.b.test"), default=backend("fallback", 80)),
            ingress("other", rule("c.test", path("/api", "api"))),
            *backend_world("api", "fallback"),
        ),
        SETTINGS,
    )
    assert config.warnings == ()
    for host in ("a.test", "x.b.test"):
        route = route_for(config, host, "/elsewhere")
        assert route == Route("default", "n", route.host, "", PATH_DEFAULT_BACKEND, "default/fallback:80",
                              body_limit=BODY_LIMIT_DEFAULT)
    assert route_for(config, "a.test", "/elsewhere").host == "a.test"
    assert route_for(config, "x.b.test", "/").host == "*.b.test"
    assert served(config, "a.test", "/api") == ("n", "/api", "Prefix")
    # c.test is claimed by another Ingress without defaultBackend: 404, never n's defaultBackend.
    assert served(config, "c.test", "/elsewhere") is None


def test_default_backend_is_the_catch_all_for_unclaimed_hosts():
    obj = ingress("n", rule("a.test", path("/api", "api")), default=backend("fallback", 80))
    config = build(snapshot(obj, *backend_world("api", "fallback")), SETTINGS)
    route = route_for(config, "unknown.test", "/whatever")
    assert route == Route("default", "n", "", "", PATH_DEFAULT_BACKEND, "default/fallback:80",
                          body_limit=BODY_LIMIT_DEFAULT)


def test_ingress_with_only_a_default_backend_catches_everything_unclaimed():
    config = build(
        snapshot(
            ingress("catch", default=backend("fallback", "http")),
            ingress("site", rule("site.test", path("/", "web"))),
            *backend_world("web"),
            *backend_world("fallback"),
        ),
        SETTINGS,
    )
    assert served(config, "nobody.test", "/a/b") == ("catch", "", "")
    assert served(config, "site.test", "/a/b") == ("site", "/", "Prefix")


def test_without_any_default_backend_unmatched_requests_get_none():
    config = build(snapshot(ingress("n", rule("a.test", path("/api", "api"))), *backend_world("api")), SETTINGS)
    assert served(config, "a.test", "/web") is None
    assert served(config, "b.test", "/api") is None
    assert config.table.any_host is None


def test_hostless_paths_win_over_the_catch_all_default():
    config = build(
        snapshot(
            ingress("old", default=backend("fallback", 80), created=OLD),
            ingress("paths", rule(None, path("/api", "api")), created=NEW),
            *backend_world("api", "fallback"),
        ),
        SETTINGS,
    )
    assert served(config, "x.test", "/api/1") == ("paths", "/api", "Prefix")
    assert served(config, "x.test", "/web") == ("old", "", "")


def test_two_default_backends_for_one_host_oldest_wins():
    config = build(
        snapshot(
            ingress("new", rule("a.test", path("/n", "n")), default=backend("new-fallback", 80), created=NEW),
            ingress("old", rule("a.test", path("/o", "o")), default=backend("old-fallback", 80), created=OLD),
            *backend_world("n", "o", "new-fallback", "old-fallback"),
        ),
        SETTINGS,
    )
    assert route_for(config, "a.test", "/x").cluster == "default/old-fallback:80"
    assert route_for(config, "elsewhere.test", "/x").cluster == "default/old-fallback:80"
    [warning] = config.warnings
    assert (warning.name, "Ingress default/old" in warning.message) == ("new", True)
    assert "defaultBackend for host a.test" in warning.message
    # The other paths of both Ingresses still merge.
    assert served(config, "a.test", "/n") == ("new", "/n", "Prefix")


def test_catch_all_contest_warns_only_ingresses_whose_default_serves_no_host_of_their_own():
    config = build(
        snapshot(
            ingress("first", default=backend("one", 80), created="2020-01-01T00:00:00Z"),
            ingress("second", default=backend("two", 80), created="2021-01-01T00:00:00Z"),
            ingress("third", rule("third.test"), default=backend("three", 80), created="2022-01-01T00:00:00Z"),
            *backend_world("one", "two", "three"),
        ),
        SETTINGS,
    )
    assert served(config, "x.test", "/") == ("first", "", "")
    assert served(config, "third.test", "/") == ("third", "", "")
    [warning] = config.warnings
    assert warning.name == "second" and "Ingress default/first" in warning.message and "any host" in warning.message
    assert "default/two:80" not in config.clusters


def test_broken_default_backend_is_warned_and_rules_still_serve():
    broken = {"service": {"name": "fallback"}}
    obj = ingress("n", rule("a.test", path("/", "web")), default=broken)
    config = build(snapshot(obj, *backend_world("web")), SETTINGS)
    [warning] = config.warnings
    assert "spec.defaultBackend.service.port is missing" in warning.message
    assert served(config, "a.test", "/x") == ("n", "/", "Prefix")
    assert served(config, "b.test", "/x") is None


# --- clusters and checksums -------------------------------------------------------------------


def test_clusters_are_exactly_those_routes_reference():
    config = build(
        snapshot(
            ingress("n", rule("a.test", path("/a", "web"), path("/b", "web", 80), path("/c", "web", "http"))),
            *backend_world("web", "unused"),
        ),
        SETTINGS,
    )
    assert list(config.clusters) == ["default/web:80", "default/web:http"]
    assert {route.cluster for route in config.table.routes()} == set(config.clusters)


def _checksum(*objects) -> str:
    return build(snapshot(*objects), SETTINGS).checksum


BASE = [
    ingress("n", rule("a.test", path("/", "web"))),
    *backend_world("web"),
]


def test_equal_inputs_give_equal_checksums():
    first = build(snapshot(*BASE), SETTINGS)
    second = build(snapshot(*BASE), SETTINGS)
    assert first.checksum == second.checksum and len(first.checksum) == 64
    assert first.warnings == second.warnings


def test_checksum_ignores_what_does_not_route():
    relabelled = ingress("n", rule("a.test", path("/", "web")))
    relabelled["metadata"]["resourceVersion"] = "999"
    relabelled["metadata"]["labels"] = {"team": "x"}
    relabelled["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    assert _checksum(relabelled, *BASE[1:]) == _checksum(*BASE)
    foreign = ingress("foreign", rule("b.test", path("/", "web")), class_name="nginx")
    assert _checksum(*BASE, foreign) == _checksum(*BASE)


@pytest.mark.parametrize(
    "change",
    [
        lambda: [ingress("n", rule("a.test", path("/v2", "web"))), *BASE[1:]],  # path
        lambda: [ingress("n", rule("a.test", path("/", "web", path_type="Exact"))), *BASE[1:]],  # type
        lambda: [ingress("n", rule("b.test", path("/", "web"))), *BASE[1:]],  # host
        lambda: [ingress("m", rule("a.test", path("/", "web"))), *BASE[1:]],  # owner
        lambda: [ingress("n", rule("a.test", path("/", "web", 81))), *BASE[1:]],  # backend port
        lambda: [*BASE, ingress("z", rule("c.test"))],  # a claimed empty host changes answers
        lambda: [*BASE[:2], endpoint_slice("web", [endpoint("10.0.1.2")])],  # endpoint address
        lambda: [*BASE[:2], endpoint_slice("web", [endpoint("10.0.1.1")], [("", 9090)])],  # endpoint port
        lambda: [*BASE[:2], endpoint_slice("web", [endpoint("10.0.1.1", ready=False)])],  # readiness
        lambda: [*BASE, ingress("d", default=backend("web", 80))],  # catch-all
    ],
)
def test_any_routing_or_endpoint_change_changes_the_checksum(change):
    assert _checksum(*change()) != _checksum(*BASE)


def test_warnings_are_sorted_and_deduplicated():
    objects = [
        ingress("b", rule("h.test", path("x")), rule("*", path("/"))),
        ingress("a", rule("h.test", path("/", "missing"), path("/2", "missing"))),
    ]
    config = build(snapshot(*objects), SETTINGS)
    keys = [(w.kind, w.namespace, w.name, w.message) for w in config.warnings]
    assert keys == sorted(set(keys))
    # The missing Service is reported once on the Ingress using it, not once per path.
    assert sum("missing" in w.message for w in config.warnings) == 1


def test_empty_snapshot_builds_an_empty_table():
    config = build(Snapshot(), SETTINGS)
    assert (list(config.table.routes()), dict(config.clusters), config.warnings) == ([], {}, ())
    assert config.table.match("a.test", "/") is None
