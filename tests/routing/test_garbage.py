"""build() survives arbitrary garbage: every broken object becomes a warning, never an exception.

Seeded random mutations of realistic objects (a field replaced by junk, removed, a list cut short)
plus wholly random values. The builder has last-resort handlers that turn an unexpected exception
into a warning; those must never fire here, because each one would be a bug hidden from users.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from typing import Any

import pytest

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.model import Config
from proxy.settings import Settings

from .objects import (
    backend,
    endpoint,
    endpoint_slice,
    ingress,
    ingress_class,
    legacy_endpoints,
    path,
    route_for,
    rule,
    service,
    service_port,
    snapshot,
)

SETTINGS = Settings(watch_ingress_without_class=True)
# Messages of the last-resort handlers (see build.py and backends.py).
SAFETY_NETS = ("skipped: ", "cannot resolve backend")

JUNK: list[Any] = [
    None, True, False, 0, -1, 1, 80, 65536, 3.5, float("nan"), "", "/", "*", "a.*.b", "80", "http", "..",
    "/../x", "%zz", "\x00", "Exact", "Prefix", "ImplementationSpecific", "IPv4", "FQDN", "ExternalName",
    [], [None], [1, "a"], {}, {"a": 1}, {"number": 80}, {"name": "http"}, b"bytes", ("tuple",), object(),
]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.15:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and roll < 0.3:
        keys = ["name", "port", "number", "path", "pathType", "host", "service", "http", "paths", "ready", "x"]
        return {rng.choice(keys): _junk(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return copy.deepcopy(rng.choice(JUNK))  # a copy: _mutate edits containers in place


def _containers(value: Any, found: list[Any]) -> list[Any]:
    if isinstance(value, (dict, list)):
        found.append(value)
        for child in value.values() if isinstance(value, dict) else value:
            _containers(child, found)
    return found


def _mutate(obj: dict[str, Any], rng: random.Random) -> None:
    """Damage one to three places of a realistic object."""
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(_containers(obj, []))
        if isinstance(target, dict):
            if not target:
                target["x"] = _junk(rng)
                continue
            key = rng.choice(sorted(target, key=str))
            action = rng.random()
            if action < 0.5:
                target[key] = _junk(rng)
            elif action < 0.8:
                del target[key]
            else:
                target[rng.choice(["extra", key + "_", "resource"])] = _junk(rng)
        else:
            if target and rng.random() < 0.5:
                del target[rng.randrange(len(target)) :]
            elif target:
                target[rng.randrange(len(target))] = _junk(rng)
            else:
                target.append(_junk(rng))


def _world() -> list[dict[str, Any]]:
    return [
        ingress(
            "site",
            rule("Shop.example.com", path("/", "web"), path("/api", "api", "grpc", path_type="Exact")),
            rule("*.cdn.example.com", path("/img", "web", path_type="ImplementationSpecific")),
            rule(None, path("/", "ext", 443)),
            default=backend("web", "http"),
        ),
        ingress("legacy", rule("old.test", path("/x", "api", 9000)), class_name=None, class_annotation="pyngress"),
        ingress(
            "plain",
            rule("shop.example.com", path("/api", "api", 9000)),
            class_name=None,
            created="2019-01-01T00:00:00Z",
        ),
        ingress_class("pyngress", default=True),
        service("web", service_port(80, name="http", target="http")),
        service("api", service_port(9000, name="grpc", target=9001)),
        service("ext", service_port(443, name="https"), external_name="api.partner.example"),
        endpoint_slice(
            "web",
            [endpoint("10.0.0.1"), endpoint("10.0.0.2", ready=False), endpoint("10.0.0.3", ready=None)],
            [("http", 8080)],
        ),
        endpoint_slice("web", [endpoint("fd00::1")], [("http", 8080)], suffix="v6", address_type="IPv6"),
        legacy_endpoints("api", ["10.0.1.1"], [("grpc", 9001)], not_ready=["10.0.1.2"]),
    ]


def _check(config: Config) -> None:
    assert isinstance(config, Config)
    assert not [w for w in config.warnings if any(net in w.message for net in SAFETY_NETS)], config.warnings
    for warning in config.warnings:
        assert all(isinstance(part, str) for part in (warning.kind, warning.namespace, warning.name, warning.message))
    for host in ("shop.example.com", "a.cdn.example.com", "old.test", "other.test"):
        for request_path in ("/", "/api", "/img/1", "/x"):
            route = route_for(config, host, request_path)
            assert route is None or route.cluster in config.clusters


def _snapshot_of(objects: list[dict[str, Any]], damaged: dict[str, Any], original: dict[str, Any]) -> Snapshot:
    """Index by the undamaged object's identity (the cache keys objects by their API path, not their body)."""
    base = snapshot(*[original if obj is damaged else obj for obj in objects])
    kind, meta = original["kind"], original["metadata"]
    key = (meta.get("namespace", ""), meta["name"])
    if kind == "Ingress":
        return replace(base, ingresses={**base.ingresses, key: damaged})
    if kind == "IngressClass":
        return replace(base, ingress_classes={**base.ingress_classes, meta["name"]: damaged})
    if kind == "Service":
        return replace(base, services={**base.services, key: damaged})
    if kind == "Endpoints":
        return replace(base, endpoints={**base.endpoints, key: damaged})
    owner = (meta["namespace"], meta["labels"]["kubernetes.io/service-name"])
    slices = {**base.endpoint_slices, owner: {**base.endpoint_slices[owner], meta["name"]: damaged}}
    return replace(base, endpoint_slices=slices)


def test_the_undamaged_world_builds_cleanly():
    config = build(snapshot(*_world()), SETTINGS)
    assert config.warnings == ()
    assert route_for(config, "shop.example.com", "/api").cluster == "default/api:grpc"


@pytest.mark.parametrize("seed", range(6))
def test_randomly_damaged_objects_never_break_the_build(seed):
    rng = random.Random(seed)
    objects = _world()
    for _ in range(250):
        index = rng.randrange(len(objects))
        damaged = copy.deepcopy(objects[index])
        _mutate(damaged, rng)
        _check(build(_snapshot_of(objects, damaged, objects[index]), SETTINGS))


@pytest.mark.parametrize("seed", range(3))
def test_wholly_random_objects_never_break_the_build(seed):
    rng = random.Random(1000 + seed)
    for _ in range(200):
        junk = {
            "ingresses": {("default", f"i{n}"): _junk(rng) for n in range(3)},
            "ingress_classes": {"pyngress": _junk(rng)},
            "services": {("default", name): _junk(rng) for name in ("web", "api", "ext")},
            "endpoint_slices": {("default", "web"): {"web-x": _junk(rng)}},
            "endpoints": {("default", "api"): _junk(rng)},
        }
        # Keep one real Ingress so random Services and slices are actually resolved.
        junk["ingresses"][("default", "site")] = _world()[0]
        _check(build(Snapshot(**junk), SETTINGS))


def test_one_broken_ingress_costs_only_itself():
    objects = _world()
    broken = copy.deepcopy(objects[0])
    broken["spec"]["rules"] = "everything"
    config = build(_snapshot_of(objects, broken, objects[0]), SETTINGS)
    assert [w.name for w in config.warnings] == ["site"]
    assert route_for(config, "old.test", "/x").cluster == "default/api:9000"
    assert route_for(config, "shop.example.com", "/api/v").cluster == "default/api:9000"
