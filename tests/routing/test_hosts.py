"""Host selection: exact beats one-label wildcard beats host-less rules; a claimed host never falls through."""

from __future__ import annotations

import pytest

from proxy.routing.build import build
from proxy.settings import Settings

from .objects import backend, backend_world, ingress, path, rule, served, snapshot

SETTINGS = Settings()


def _world():
    """Three layers for the same path, each with its own Ingress: exact, wildcard, host-less."""
    return build(
        snapshot(
            ingress("exact", rule("foo.example.com", path("/", "a"))),
            ingress("wild", rule("*.example.com", path("/", "b"))),
            ingress("any", rule(None, path("/", "c"))),
            *backend_world("a", "b", "c"),
        ),
        SETTINGS,
    )


@pytest.mark.parametrize(
    "host, expected",
    [
        ("foo.example.com", "exact"),
        ("FOO.Example.COM", "exact"),  # case-insensitive
        ("foo.example.com:8080", "exact"),  # the port is not part of the host
        ("foo.example.com.", "exact"),  # nor the root dot
        ("bar.example.com", "wild"),
        ("bar.example.com:443", "wild"),
        ("BAR.EXAMPLE.COM", "wild"),
        ("a.bar.example.com", "any"),  # the wildcard covers exactly one label
        ("example.com", "any"),  # and never the bare domain
        ("other.test", "any"),
        ("10.0.0.1:8080", "any"),
        ("[::1]:8080", "any"),
        ("", "any"),
    ],
)
def test_host_precedence(host, expected):
    config = _world()
    assert config.warnings == ()
    assert served(config, host, "/x")[0] == expected


def test_claimed_host_never_falls_through_to_wildcard_or_hostless():
    config = build(
        snapshot(
            ingress("exact", rule("foo.example.com", path("/only", "a"))),
            ingress("wild", rule("*.example.com", path("/", "b"))),
            ingress("any", rule(None, path("/", "c")), default=backend("c", 80)),
            *backend_world("a", "b", "c"),
        ),
        SETTINGS,
    )
    assert served(config, "foo.example.com", "/only/x") == ("exact", "/only", "Prefix")
    assert served(config, "foo.example.com", "/other") is None  # 404, not the wildcard's "/"
    assert served(config, "bar.example.com", "/other") == ("wild", "/", "Prefix")
    assert served(config, "bar.other", "/x") == ("any", "/", "Prefix")


def test_claimed_wildcard_never_falls_through_to_hostless():
    config = build(
        snapshot(
            ingress("wild", rule("*.example.com", path("/api", "b"))),
            ingress("any", rule(None, path("/", "c"))),
            *backend_world("b", "c"),
        ),
        SETTINGS,
    )
    assert served(config, "x.example.com", "/api") == ("wild", "/api", "Prefix")
    assert served(config, "x.example.com", "/web") is None


def test_host_named_without_paths_is_claimed():
    """A rule naming only a host (no http) claims it: its requests get the Ingress's defaultBackend or 404."""
    config = build(
        snapshot(
            ingress("bare", rule("bare.test")),
            ingress("any", rule(None, path("/", "c"))),
            *backend_world("c"),
        ),
        SETTINGS,
    )
    assert served(config, "bare.test", "/") is None
    assert served(config, "else.test", "/") == ("any", "/", "Prefix")


def test_rule_hosts_are_lowercased_and_stored_as_table_keys():
    config = build(
        snapshot(
            ingress("n", rule("Shop.Example.COM", path("/", "a")), rule("*.Cdn.Example.com", path("/", "b"))),
            *backend_world("a", "b"),
        ),
        SETTINGS,
    )
    assert set(config.table.hosts) == {"shop.example.com"}
    assert set(config.table.wildcards) == {"cdn.example.com"}
    assert config.table.any_host is None
    hosts = sorted(route.host for route in config.table.routes())
    assert hosts == ["*.cdn.example.com", "shop.example.com"]
    assert served(config, "img.cdn.example.com", "/") == ("n", "/", "Prefix")


@pytest.mark.parametrize(
    "host",
    [
        "*",
        "a.*.b",
        "*.*.example.com",
        "*example.com",
        "foo.example.com:8080",
        "10.0.0.1",
        "[::1]",
        "::1",
        "-leading.example.com",
        "under_score.example.com",
        "trailing.example.com.",
        "sp ace.example.com",
        "a" * 250 + ".com",
    ],
)
def test_invalid_host_skips_the_rule_with_a_warning(host):
    config = build(
        snapshot(
            ingress("n", rule(host, path("/bad", "a")), rule("good.test", path("/", "b"))),
            *backend_world("a", "b"),
        ),
        SETTINGS,
    )
    [warning] = config.warnings
    assert (warning.kind, warning.namespace, warning.name) == ("Ingress", "default", "n")
    assert "spec.rules[0]" in warning.message and "rule skipped" in warning.message
    assert served(config, "good.test", "/bad") == ("n", "/", "Prefix")
    assert all(route.path != "/bad" for route in config.table.routes())
    assert config.table.any_host is None  # the skipped rule did not become host-less either


def test_wildcard_of_a_top_level_domain_is_valid():
    config = build(snapshot(ingress("n", rule("*.test", path("/", "a"))), *backend_world("a")), SETTINGS)
    assert config.warnings == ()
    assert served(config, "x.test", "/") == ("n", "/", "Prefix")
    assert served(config, "a.x.test", "/") is None


def test_same_invalid_host_in_two_ingresses_warns_each_with_its_own_rule_index():
    config = build(
        snapshot(
            ingress("one", rule("a.*.b", path("/", "a"))),
            ingress("two", rule("ok.test", path("/", "a")), rule("a.*.b", path("/", "a"))),
            *backend_world("a"),
        ),
        SETTINGS,
    )
    messages = {w.name: w.message for w in config.warnings}
    assert messages["one"].startswith("spec.rules[0].host")
    assert messages["two"].startswith("spec.rules[1].host")


def test_empty_host_string_is_a_hostless_rule():
    config = build(snapshot(ingress("n", rule("", path("/", "a"))), *backend_world("a")), SETTINGS)
    assert config.warnings == ()
    assert served(config, "whatever.test", "/x") == ("n", "/", "Prefix")
