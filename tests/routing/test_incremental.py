"""Builder: incremental builds equal fresh ones, and both route as the oracle says.

The property tests apply random sequences of changes (Ingresses, Services, EndpointSlices,
Endpoints and IngressClasses added, edited, damaged, deleted; settings switched) and check after
every step that one long-lived Builder builds exactly what a fresh `build()` builds, and that
requests sampled from the objects get the answer of the oracle (tests/routing/oracle.py, written
from the Ingress spec and the README without any production routing code): the same Ingress,
path, Service port, redirect and endpoints, or the same 404 or 400; and the same objects warned.
The targeted tests read `Builder.work` to check that a change costs what it touches.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from typing import Any

import pytest

from proxy.kube.cache import ObjectCache
from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.checksum import checksum
from proxy.routing.incremental import Builder
from proxy.routing.model import Config
from proxy.routing.paths import normalize_path
from proxy.routing.table import RouteTable, VirtualHost, normalize_host
from proxy.settings import Settings

from .objects import (
    backend,
    backend_world,
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
from .oracle import REFUSED, Answer, Oracle
from .test_garbage import SAFETY_NETS, _junk, _mutate
from .test_path_matching import K8S_EXAMPLES

SETTINGS = Settings(watch_ingress_without_class=True)
OTHER_SETTINGS = (Settings(), Settings(ingress_class="edge"), Settings(controller_name="example.com/other"))

NAMESPACES = ("default", "team")
INGRESS_NAMES = ("i1", "i2", "i3", "i4", "i5", "i6")
SERVICE_NAMES = ("web", "api", "ext", "db")
HOSTS = ("a.test", "b.test", "*.c.test", "x.c.test", None, "A.test", "bad_host")
PATHS = ("/", "/a", "/a/", "/a/b", "/b", "/%61", "/a/../b", "")
PATH_TYPES = ("Prefix", "Exact", "ImplementationSpecific")
PORTS = (80, "http", 9000, "grpc", 443)
STAMPS = ("2020-01-01T00:00:00Z", "2021-06-01T00:00:00Z", "2021-06-01T00:00:00Z", None, "not a time")
TLS_HOSTS = ("a.test", "*.c.test", "b.test", "x.c.test")
CLASS_NAMES = ("pyngress", "edge", "nginx")
ANNOTATIONS = ("pyngress.dev/ssl-redirect", "nginx.ingress.kubernetes.io/ssl-redirect",
               "pyngress.dev/force-ssl-redirect", "nginx.ingress.kubernetes.io/force-ssl-redirect",
               "nginx.ingress.kubernetes.io/proxy-body-size")  # (not supported yet: one warning)
ANNOTATION_VALUES = ("true", "false", "true", "false", "False", " TRUE ", "yes", "")


def _bug(reason: str) -> pytest.MarkDecorator:
    """A production bug: the case fails on the comparison (strict: fixing the bug makes it pass, and fail here)."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


# Seeds whose random changes run into a production bug (see DISAGREEMENTS below for its smallest case).
BUGGY_SEEDS: dict[int, str] = {}


# ---------------------------------------------------------------------- comparing results

def _host(routes: VirtualHost) -> tuple[Any, ...]:
    return (dict(routes.exact), dict(routes.prefix), routes.default)


def table_contents(table: RouteTable) -> tuple[Any, ...]:
    """Everything a table answers with, as plain comparable values (VirtualHost compare by identity)."""
    return (
        {host: _host(routes) for host, routes in table.hosts.items()},
        {suffix: _host(routes) for suffix, routes in table.wildcards.items()},
        None if table.any_host is None else _host(table.any_host),
    )


def assert_same(got: Config, expected: Config) -> None:
    assert table_contents(got.table) == table_contents(expected.table)
    assert list(got.clusters.items()) == list(expected.clusters.items())  # same clusters, same (sorted) order
    assert got.warnings == expected.warnings


def check_step(builder: Builder, snap: Snapshot, settings: Settings, rng: random.Random | None = None) -> Config:
    """The incremental build equals a fresh one, its checksum is the table's, and (given `rng` to
    sample requests with) it routes and warns as the oracle says."""
    got = builder.build(snap, settings)
    fresh = build(snap, settings)
    assert_same(got, fresh)
    assert got.checksum == fresh.checksum == checksum(got.table, got.clusters)
    # A Service's problems reach the Ingresses using it as "Service <name>: <problem>".
    assert not [w for w in got.warnings if any(net in w.message for net in SAFETY_NETS)], got.warnings
    if rng is not None:
        assert_routes_as_the_oracle_says(got, Oracle(snap, settings), requests(snap, rng))
    return got


# ---------------------------------------------------------------------- comparing with the oracle

def production_answer(config: Config, host: str, path: str) -> Answer | str | None:
    """What the proxy does with a request, in the oracle's terms (see proxy/server.py dispatch)."""
    normalized = normalize_path(path)
    if normalized is None:
        return REFUSED
    route = config.table.match(normalize_host(host), normalized)
    if route is None:
        return None
    cluster = config.clusters[route.cluster]
    assert (route.kind, cluster.namespace) == ("Ingress", route.namespace)
    external = None if cluster.external_name is None else (cluster.external_name, cluster.external_port)
    return Answer(route.namespace, route.ingress, route.host, route.path, route.path_type, cluster.service,
                  cluster.port, route.ssl_redirect, tuple(sorted(tuple(e) for e in cluster.endpoints)), external)


def assert_routes_as_the_oracle_says(config: Config, oracle: Oracle, sample: list[tuple[str, str]]) -> None:
    wrong = []
    for host, request_path in sample:
        got, expected = production_answer(config, host, request_path), oracle.answer(host, request_path)
        if got != expected:
            wrong.append(f"{host!r} {request_path!r}:\n  production {got}\n  oracle     {expected}")
    assert not wrong, f"{len(wrong)} of {len(sample)} requests differ:\n" + "\n".join(wrong[:10])
    warned = {(w.kind, w.namespace, w.name) for w in config.warnings}
    assert warned == oracle.warned, (
        f"warned only by production: {sorted(warned - oracle.warned)}; "
        f"only by the oracle: {sorted(oracle.warned - warned)}; warnings: {config.warnings}")


# Request paths beside those the rules name: sub-paths, other cases, slashes, dots, escapes.
EXTRA_PATHS = ("/", "/x", "/A", "/a/b/c", "/ab", "/a//b", "/a/./b", "/a/b/..", "/a/../b/", "/b/x/", "/%62",
               "/%2e%2e/a", "/a/%2E%2E", "/..", "/../a", "/a/../..", "/%zz", "/a%00", "//", "/a%2fb", "/%7e")


def _visible(text: Any) -> bool:
    """What a request line can carry: printable ASCII, no blanks."""
    return isinstance(text, str) and all("!" <= char <= "~" for char in text)


def _named(snap: Snapshot) -> tuple[set[str], set[str]]:
    """Every host and path string the snapshot's Ingresses name (rules and TLS), damaged ones included."""
    hosts: set[str] = set()
    paths: set[str] = set()
    for obj in snap.ingresses.values():
        spec = obj.get("spec") if isinstance(obj, dict) else None
        if not isinstance(spec, dict):
            continue
        for entry in spec.get("tls") if isinstance(spec.get("tls"), list) else ():
            if isinstance(entry, dict) and isinstance(entry.get("hosts"), list):
                hosts.update(h for h in entry["hosts"] if _visible(h))
        for item in spec.get("rules") if isinstance(spec.get("rules"), list) else ():
            if not isinstance(item, dict):
                continue
            if _visible(item.get("host")):
                hosts.add(item["host"])
            http = item.get("http")
            for entry in http.get("paths") if isinstance(http, dict) and isinstance(http.get("paths"), list) else ():
                if isinstance(entry, dict) and _visible(entry.get("path")):
                    paths.add(entry["path"])
    return hosts, paths


def _host_variants(host: str) -> list[str]:
    bare = host[2:] if host.startswith("*.") else host
    return [host, host.upper(), host + ":8080", host + ".", "Www." + bare, "a.b." + bare, bare]


def _path_variants(path: str) -> list[str]:
    base = path if path.startswith("/") else "/" + path
    return [path, base.rstrip("/") + "/", base + "/x", base + "x", base.upper(), "/x/.." + base, "/" + base,
            base + "/../y"]


def requests(snap: Snapshot, rng: random.Random) -> list[tuple[str, str]]:
    """Every host named with every path named, then variants and strangers, drawn at random."""
    hosts, paths = _named(snap)
    hosts |= {h for h in HOSTS + TLS_HOSTS if h}
    paths |= {p for p in PATHS if p}
    named = [(host, path) for host in sorted(hosts) for path in sorted(paths)]
    other_hosts = sorted({v for host in hosts for v in _host_variants(host)} | {
        "", "nobody.test", "10.0.0.1:8080", "[::1]:8080", "c.test", "x.y.c.test", "*.c.test"})
    other_paths = sorted({v for path in paths for v in _path_variants(path)} | set(EXTRA_PATHS))
    strangers = [(rng.choice(other_hosts), rng.choice(other_paths)) for _ in range(60)]
    return named + strangers


# ---------------------------------------------------------------------- random objects

def _maybe_damage(obj: dict[str, Any], rng: random.Random, chance: float) -> dict[str, Any]:
    if rng.random() < chance:
        _mutate(obj, rng)
    return obj


def random_ingress(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    rules = []
    for _ in range(rng.randint(0, 3)):
        paths = [
            path(rng.choice(PATHS), rng.choice(SERVICE_NAMES), rng.choice(PORTS), path_type=rng.choice(PATH_TYPES))
            for _ in range(rng.randint(0, 3))
        ]
        rules.append(rule(rng.choice(HOSTS), *paths))
    obj = ingress(
        name,
        *rules,
        namespace=namespace,
        class_name=rng.choice(("pyngress", "pyngress", "edge", "nginx", None)),
        class_annotation=rng.choice((None, None, "pyngress", "nginx")),
        default=backend(rng.choice(SERVICE_NAMES), rng.choice(PORTS)) if rng.random() < 0.3 else None,
        created=rng.choice(STAMPS),
    )
    if rng.random() < 0.35:
        entry: dict[str, Any] = {"secretName": "cert"}
        if rng.random() < 0.7:
            entry["hosts"] = rng.sample(TLS_HOSTS, rng.randint(1, 2))
        obj["spec"]["tls"] = [entry]
    if rng.random() < 0.35:
        # Both spellings of an annotation at once sometimes: pyngress.dev/ must win while it is valid.
        annotations = obj["metadata"].setdefault("annotations", {})
        for flag in rng.sample(ANNOTATIONS, rng.randint(1, 3)):
            annotations[flag] = rng.choice(ANNOTATION_VALUES)
    return _maybe_damage(obj, rng, 0.15)


def random_service(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    ports = [p for p in (service_port(80, name="http", target="http"), service_port(9000, name="grpc", target=9001),
                         service_port(443, name="https", protocol=rng.choice(("TCP", "UDP"))))
             if rng.random() < 0.7]
    external = "api.partner.example" if rng.random() < 0.15 else None
    return _maybe_damage(service(name, *ports, namespace=namespace, external_name=external), rng, 0.15)


def random_slice(rng: random.Random, namespace: str, owner: str, suffix: str) -> dict[str, Any]:
    endpoints = [
        endpoint(rng.choice(("10.0.0.1", "10.0.0.2", "10.0.1.1", "fd00::1", "010.0.0.1")),
                 ready=rng.choice((True, True, False, None)))
        for _ in range(rng.randint(0, 3))
    ]
    ports = [p for p in (("http", 8080), ("grpc", 9001), ("", 8080)) if rng.random() < 0.6]
    obj = endpoint_slice(owner, endpoints, ports, namespace=namespace, suffix=suffix,
                         address_type=rng.choice(("IPv4", "IPv4", "IPv6", "FQDN")))
    return _maybe_damage(obj, rng, 0.15)


def random_endpoints(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    obj = legacy_endpoints(name, rng.sample(("10.1.0.1", "10.1.0.2", "fd00::2"), rng.randint(0, 2)),
                           [("http", 8080), ("grpc", 9001)][: rng.randint(0, 2)], namespace=namespace)
    return _maybe_damage(obj, rng, 0.15)


def random_class(rng: random.Random, name: str) -> dict[str, Any]:
    obj = ingress_class(name, controller=rng.choice(("pyngress.dev/ingress-controller", "k8s.io/ingress-nginx",
                                                     "example.com/other")),
                        default=rng.random() < 0.4)
    return _maybe_damage(obj, rng, 0.1)


class World:
    """Objects by kind and key, handed out as snapshots the way the object cache does: unchanged
    objects stay the identical dicts, an untouched kind keeps its mapping object."""

    KINDS = ("ingresses", "ingress_classes", "services", "endpoint_slices", "endpoints")

    def __init__(self) -> None:
        self.objects: dict[str, dict[Any, Any]] = {kind: {} for kind in self.KINDS}
        self.views: dict[str, Any] = {}

    def put(self, kind: str, key: Any, obj: Any | None) -> None:
        if obj is None:
            self.objects[kind].pop(key, None)
        else:
            self.objects[kind][key] = obj
        self.views.pop(kind, None)

    def snapshot(self) -> Snapshot:
        for kind in self.KINDS:
            if kind not in self.views:
                items = self.objects[kind]
                if kind == "endpoint_slices":
                    groups: dict[Any, dict[str, Any]] = {}
                    for (namespace, owner, name), obj in items.items():
                        groups.setdefault((namespace, owner), {})[name] = obj
                    self.views[kind] = groups
                else:
                    self.views[kind] = dict(items)
        return Snapshot(**self.views)

    def step(self, rng: random.Random) -> None:
        """One random change (sometimes none at all, or the same content as a new dict)."""
        roll = rng.random()
        namespace = rng.choice(NAMESPACES)
        if roll < 0.4:
            key = (namespace, rng.choice(INGRESS_NAMES))
            kind, make = "ingresses", lambda: random_ingress(rng, *key)
        elif roll < 0.55:
            key = (namespace, rng.choice(SERVICE_NAMES))
            kind, make = "services", lambda: random_service(rng, *key)
        elif roll < 0.72:
            owner = rng.choice(SERVICE_NAMES)
            suffix = rng.choice(("a", "b"))
            key = (namespace, owner, f"{owner}-{suffix}")
            kind, make = "endpoint_slices", lambda: random_slice(rng, namespace, owner, suffix)
        elif roll < 0.8:
            key = (namespace, rng.choice(SERVICE_NAMES))
            kind, make = "endpoints", lambda: random_endpoints(rng, *key)
        elif roll < 0.9:
            key = rng.choice(CLASS_NAMES)
            kind, make = "ingress_classes", lambda: random_class(rng, key)
        elif roll < 0.93:
            # Same content, new dict: identity changes, nothing else does.
            kind = rng.choice(self.KINDS)
            if self.objects[kind]:
                key = rng.choice(sorted(self.objects[kind], key=repr))
                self.put(kind, key, copy.deepcopy(self.objects[kind][key]))
            return
        elif roll < 0.95:
            # The very same dict under a second name: memos must not be keyed by identity alone.
            if self.objects["ingresses"]:
                obj = self.objects["ingresses"][rng.choice(sorted(self.objects["ingresses"]))]
                self.put("ingresses", (namespace, rng.choice(INGRESS_NAMES)), obj)
            return
        else:
            return  # nothing changed
        action = rng.random()
        if action < 0.2:
            self.put(kind, key, None)
        elif action < 0.25:
            self.put(kind, key, _junk(rng))  # wholly random
        else:
            self.put(kind, key, make())


# ---------------------------------------------------------------------- property tests

@pytest.mark.parametrize("seed", [pytest.param(seed, marks=_bug(BUGGY_SEEDS[seed])) if seed in BUGGY_SEEDS else seed
                                  for seed in range(8)])
def test_random_changes_build_what_a_fresh_build_does(seed):
    rng = random.Random(seed)
    sampler = random.Random(-seed)  # requests drawn apart, so the changes stay those of the seed
    world = World()
    builder = Builder()
    settings = SETTINGS
    previous: tuple[Any, ...] | None = None
    previous_checksum = ""
    for _ in range(150):
        for _ in range(rng.choice((1, 1, 1, 2, 4))):
            world.step(rng)
        if rng.random() < 0.04:
            settings = rng.choice((*OTHER_SETTINGS, SETTINGS))
        elif rng.random() < 0.04:
            settings = Settings(**{f: getattr(settings, f) for f in settings.__dataclass_fields__})  # equal copy
        config = check_step(builder, world.snapshot(), settings, sampler)
        # The checksum changes exactly when what is served does.
        contents = (table_contents(config.table), dict(config.clusters))
        if previous is not None:
            assert (config.checksum == previous_checksum) == (contents == previous)
        previous, previous_checksum = contents, config.checksum


KIND_NAMES = {
    "ingresses": "Ingress", "ingress_classes": "IngressClass", "services": "Service",
    "endpoint_slices": "EndpointSlice", "endpoints": "Endpoints",
}


@pytest.mark.parametrize("seed", range(3))
def test_random_watch_events_through_the_object_cache(seed):
    """The real producer of snapshots: watch events and relists applied to the ObjectCache."""
    rng = random.Random(100 + seed)
    sampler = random.Random(-100 - seed)
    cache = ObjectCache()
    shadow = World()  # only to draw random objects and keys
    builder = Builder()
    for _ in range(120):
        shadow.step(rng)
        kind = rng.choice(World.KINDS)
        objects = shadow.objects[kind]
        valid = [obj for obj in objects.values() if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict)
                 and isinstance(obj["metadata"].get("name"), str) and obj["metadata"]["name"]]
        if rng.random() < 0.15:
            # A relist: unchanged content keeps the cached dicts, whatever dicts the list brought.
            cache.replace(KIND_NAMES[kind], [copy.deepcopy(obj) for obj in valid])
        elif valid:
            obj = copy.deepcopy(rng.choice(valid))
            event = rng.choice(("ADDED", "MODIFIED", "MODIFIED", "DELETED"))
            cache.apply(KIND_NAMES[kind], event, obj)
        check_step(builder, cache.snapshot(), SETTINGS, sampler)


# ---------------------------------------------------------------------- the oracle itself

@pytest.mark.parametrize("rules, request_path, expected", K8S_EXAMPLES)
def test_the_oracle_answers_the_kubernetes_documentation_examples(rules, request_path, expected):
    paths = [path(p, f"svc{index}", path_type=kind) for index, (kind, p) in enumerate(rules)]
    snap = snapshot(ingress("docs", rule("example.com", *paths)),
                    *backend_world(*(f"svc{index}" for index in range(len(rules)))))
    found = Oracle(snap, Settings()).answer("example.com", request_path)
    if expected is None:
        assert found is None
    else:
        assert isinstance(found, Answer)
        assert (found.path_type, found.path, found.service) == (*expected, f"svc{rules.index(expected)}")


def test_the_oracle_answers_host_precedence_and_refusals():
    snap = snapshot(
        ingress("exact", rule("foo.example.com", path("/only", "a")), created="2020-01-01T00:00:00Z"),
        ingress("wild", rule("*.example.com", path("/", "b"))),
        ingress("any", rule(None, path("/", "c")), default=backend("c", 80)),
        *backend_world("a", "b", "c"),
    )
    oracle = Oracle(snap, Settings())

    def who(host: str, request_path: str) -> Any:
        found = oracle.answer(host, request_path)
        return found if not isinstance(found, Answer) else (found.ingress, found.host, found.path)

    assert who("FOO.example.com.:8080", "/only/x") == ("exact", "foo.example.com", "/only")
    assert who("foo.example.com", "/other") is None  # claimed: never falls through
    assert who("bar.example.com", "/x") == ("wild", "*.example.com", "/")
    assert who("a.bar.example.com", "/x") == ("any", "", "/")
    assert who("example.com", "/x") == ("any", "", "/")
    assert who("foo.example.com", "/x/../only") == ("exact", "foo.example.com", "/only")
    assert who("foo.example.com", "/only/../..") == REFUSED
    assert who("foo.example.com", "/%2E%2e/only") == REFUSED
    assert oracle.warned == set()


# ---------------------------------------------------------------------- where production and the oracle disagree

def _answers_agree(objects: list[dict[str, Any]], sample: list[tuple[str, str]]) -> None:
    snap = snapshot(*objects)
    assert_routes_as_the_oracle_says(build(snap, SETTINGS), Oracle(snap, SETTINGS), sample)


def _odd_address_type() -> list[dict[str, Any]]:
    odd = endpoint_slice("web", [endpoint("10.0.0.2")], suffix="odd")
    odd["addressType"] = ["IPv4"]
    return [ingress("n", rule("a.test", path("/", "web"))), service("web"),
            endpoint_slice("web", [endpoint("10.0.0.1")], suffix="good"), odd]


def _portless_entry_first() -> list[dict[str, Any]]:
    portless: dict[str, Any] = {"name": "metrics", "protocol": "TCP"}
    return [ingress("n", rule("a.test", path("/", "web", 80))),
            service("web", portless, service_port(80, name="http", target=8080)),
            endpoint_slice("web", [endpoint("10.0.0.1")], [("http", 8080)])]


def _portless_entry_last() -> list[dict[str, Any]]:
    objects = _portless_entry_first()
    ports = objects[1]["spec"]["ports"]
    ports.reverse()
    return objects


def _tls(entry: dict[str, Any]) -> list[dict[str, Any]]:
    obj = ingress("n", rule("a.test", path("/", "web")))
    obj["spec"]["tls"] = [entry]
    return [obj, *backend_world("web")]


_KUBERNETES_REFUSES = "production accepts what the Kubernetes API refuses (file mode only)"


DISAGREEMENTS = [
    pytest.param(
        _odd_address_type(), [("a.test", "/")], id="unhashable-addressType"),
    pytest.param(
        _portless_entry_first(), [("a.test", "/")], id="portless-service-port-before-the-named-one"),
    pytest.param(_portless_entry_last(), [("a.test", "/")], id="portless-service-port-after-the-named-one"),
    pytest.param(
        _tls({"secretName": 7, "hosts": ["a.test"]}), [("a.test", "/")], id="tls-entry-with-a-bad-secretName"),
    pytest.param(
        _tls({"secretName": "cert", "hosts": ""}), [("a.test", "/")], id="tls-entry-with-hosts-not-a-list"),
    pytest.param(_tls({"secretName": "cert"}), [("a.test", "/")], id="tls-entry-without-hosts"),
    pytest.param(
        [ingress("n", rule("a.test", path("/", "80"), path("/x", "web"))), *backend_world("web")],
        [("a.test", "/"), ("a.test", "/x")], id="service-name-not-a-dns-1035-label"),
    pytest.param(
        [ingress("n", rule("a.test", path("/", "web", "a--b"))), service("web", service_port(80, name="a--b")),
         endpoint_slice("web", [endpoint("10.0.0.1")], [("a--b", 8080)])],
        [("a.test", "/")], id="port-name-not-an-iana-service-name"),
    pytest.param(
        [ingress("n", rule("a" * 64 + ".test", path("/", "web"))), *backend_world("web")],
        [("a" * 64 + ".test", "/")], id="host-label-over-63-characters"),
]


@pytest.mark.parametrize("objects, sample", DISAGREEMENTS)
def test_production_and_the_oracle_agree_where_the_fuzz_found_them_apart(objects, sample):
    """Each case is the smallest form of a disagreement the random tests found (or the spec rule behind
    one); an xfail marks a production bug, strict so that fixing it shows up here."""
    _answers_agree(objects, sample)


# ---------------------------------------------------------------------- targeted tests

def _base() -> dict[str, Any]:
    return {
        "one": ingress("one", rule("a.test", path("/", "web"), path("/api", "api", "http")),
                       created="2020-01-01T00:00:00Z"),
        "two": ingress("two", rule("b.test", path("/", "web")), rule("a.test", path("/api", "web")),
                       created="2021-01-01T00:00:00Z"),
        "three": ingress("three", rule("c.test", path("/", "db"))),
    }


def _backends() -> dict[str, Any]:
    """Services and slices by a name of their own, made once per test (their identity is what counts)."""
    web, web_slice, db, db_slice = backend_world("web", "db")
    return {
        "web": web, "web-slice": web_slice, "db": db, "db-slice": db_slice,
        "api": service("api", service_port(80, name="http", target=8080)),
        "api-slice": endpoint_slice("api", [endpoint("10.9.0.1")], [("http", 8080)]),
    }


def _snapshot(ingresses: dict[str, Any], backends: dict[str, Any], *others: Any) -> Snapshot:
    return snapshot(*ingresses.values(), *backends.values(), *others)


def test_an_unchanged_snapshot_costs_nothing():
    builder = Builder()
    snap = _snapshot(_base(), _backends())
    first = builder.build(snap, SETTINGS)
    assert (builder.work.ingresses, builder.work.clusters) == (3, 3)  # web:80, api:http, db:80
    again = builder.build(snap, SETTINGS)
    assert (builder.work.ingresses, builder.work.hosts, builder.work.clusters) == (0, 0, 0)
    assert again.checksum == first.checksum
    assert_same(again, first)


def test_an_edited_ingress_is_parsed_again_and_only_its_hosts_merged():
    builder = Builder()
    objects = _base()
    backends = _backends()
    builder.build(_snapshot(objects, backends), SETTINGS)
    objects["three"] = ingress("three", rule("c.test", path("/v2", "db")))
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert (builder.work.ingresses, builder.work.hosts, builder.work.clusters) == (1, 1, 0)
    assert route_for(config, "c.test", "/v2/x").path == "/v2"
    assert route_for(config, "c.test", "/other") is None
    assert_same(config, build(_snapshot(objects, backends), SETTINGS))


def test_an_equal_copy_is_parsed_again_but_changes_nothing():
    builder = Builder()
    objects = _base()
    backends = _backends()
    first = builder.build(_snapshot(objects, backends), SETTINGS)
    objects["two"] = copy.deepcopy(objects["two"])
    again = builder.build(_snapshot(objects, backends), SETTINGS)
    assert builder.work.ingresses == 1 and builder.work.clusters == 0
    assert again.checksum == first.checksum


def test_deleting_the_older_ingress_hands_its_paths_to_the_younger():
    builder = Builder()
    objects = _base()
    backends = _backends()
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert route_for(config, "a.test", "/api").ingress == "one"
    assert [w.name for w in config.warnings] == ["two"]  # lost /api on a.test
    del objects["one"]
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert builder.work.ingresses == 0 and builder.work.hosts == 1  # only a.test is merged again
    assert route_for(config, "a.test", "/api").ingress == "two"
    assert config.warnings == ()
    assert "default/api:http" not in config.clusters
    assert_same(config, build(_snapshot(objects, backends), SETTINGS))


def test_a_service_change_resolves_only_its_clusters():
    builder = Builder()
    objects = _base()
    backends = _backends()
    first = builder.build(_snapshot(objects, backends), SETTINGS)
    # Of web only web:80 is used; db and api stay as they were.
    backends["web"] = service("web", service_port(80, target=8080), service_port(81, name="alt"))
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert (builder.work.ingresses, builder.work.hosts, builder.work.clusters) == (0, 0, 1)
    assert config.checksum == first.checksum  # the same endpoints: nothing served changed
    backends["web"] = service("web", service_port(80, target=9999))
    backends["web-slice"] = endpoint_slice("web", [endpoint("10.0.1.1")], [("", 9999)])
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert (builder.work.ingresses, builder.work.hosts, builder.work.clusters) == (0, 0, 1)
    assert config.clusters["default/web:80"].endpoints[0].port == 9999
    assert config.checksum != first.checksum
    assert config.clusters["default/db:80"] is first.clusters["default/db:80"]
    assert_same(config, build(_snapshot(objects, backends), SETTINGS))


def test_an_endpoint_slice_change_resolves_only_its_service_clusters():
    builder = Builder()
    objects = _base()
    backends = _backends()
    first = builder.build(_snapshot(objects, backends), SETTINGS)
    backends["db-slice"] = endpoint_slice("db", [endpoint("10.0.2.7")])
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert (builder.work.ingresses, builder.work.hosts, builder.work.clusters) == (0, 0, 1)
    assert config.clusters["default/db:80"].endpoints[0].address == "10.0.2.7"
    assert config.checksum != first.checksum
    assert config.clusters["default/web:80"] is first.clusters["default/web:80"]
    # A second slice for the Service, then none at all: its legacy Endpoints would count again.
    extra = endpoint_slice("db", [endpoint("10.0.2.8")], suffix="fghij")
    config = builder.build(_snapshot(objects, backends, extra), SETTINGS)
    assert builder.work.clusters == 1 and len(config.clusters["default/db:80"].endpoints) == 2
    del backends["db-slice"]
    config = builder.build(_snapshot(objects, backends, legacy_endpoints("db", ["10.0.3.3"])), SETTINGS)
    assert builder.work.clusters == 1 and config.clusters["default/db:80"].endpoints[0].address == "10.0.3.3"


def test_a_settings_change_starts_over():
    builder = Builder()
    snap = _snapshot(_base(), _backends())
    builder.build(snap, SETTINGS)
    builder.build(snap, Settings(**{f: getattr(SETTINGS, f) for f in SETTINGS.__dataclass_fields__}))
    assert builder.work.ingresses == 0  # an equal Settings object is no change
    config = builder.build(snap, Settings(ingress_class="edge"))
    assert builder.work.ingresses == 0 and config.table.hosts == {}  # class "pyngress" is not ours any more
    config = builder.build(snap, SETTINGS)
    assert builder.work.ingresses == 3 and builder.work.clusters == 3
    assert_same(config, build(snap, SETTINGS))


def test_ingress_class_changes_touch_only_what_they_select():
    builder = Builder()
    objects = _base()
    backends = _backends()
    objects["classless"] = ingress("classless", rule("d.test", path("/", "web")), class_name=None)
    builder.build(_snapshot(objects, backends), Settings())
    foreign = ingress_class("nginx", controller="k8s.io/ingress-nginx")
    builder.build(_snapshot(objects, backends, foreign), Settings())
    assert (builder.work.ingresses, builder.work.hosts) == (0, 0)  # selection unchanged
    default = ingress_class("pyngress", default=True)
    config = builder.build(_snapshot(objects, backends, foreign, default), Settings())
    assert (builder.work.ingresses, builder.work.hosts) == (1, 1)  # the class-less Ingress is ours now
    assert route_for(config, "d.test", "/").ingress == "classless"
    config = builder.build(_snapshot(objects, backends, foreign), Settings())
    assert (builder.work.ingresses, builder.work.hosts) == (0, 1)  # its parse is remembered
    assert route_for(config, "d.test", "/") is None


def test_tls_on_one_host_merges_only_that_host_again():
    builder = Builder()
    objects = _base()
    backends = _backends()
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert not route_for(config, "c.test", "/").ssl_redirect
    secured = copy.deepcopy(objects["three"])
    secured["spec"]["tls"] = [{"hosts": ["c.test"], "secretName": "cert"}]
    objects["three"] = secured
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert builder.work.hosts == 1
    assert route_for(config, "c.test", "/").ssl_redirect
    assert not route_for(config, "a.test", "/").ssl_redirect
    # TLS for a.test named by another Ingress flips a.test's routes, whose Ingresses are not reparsed.
    objects["tls-only"] = ingress("tls-only")
    objects["tls-only"]["spec"]["tls"] = [{"hosts": ["a.test"], "secretName": "cert"}]
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert (builder.work.ingresses, builder.work.hosts) == (1, 1)
    assert route_for(config, "a.test", "/").ssl_redirect and route_for(config, "a.test", "/api").ssl_redirect
    assert_same(config, build(_snapshot(objects, backends), SETTINGS))


def test_a_missing_service_is_reported_on_every_ingress_using_it_as_they_come_and_go():
    builder = Builder()
    objects = _base()
    backends = _backends()
    objects["lost"] = ingress("lost", rule("e.test", path("/", "missing")))
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert [(w.kind, w.name) for w in config.warnings] == [("Ingress", "lost"), ("Ingress", "two")]
    objects["also-lost"] = ingress("also-lost", rule("f.test", path("/", "missing")))
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert builder.work.clusters == 0  # the cluster is shared, its resolution remembered
    assert sorted(w.name for w in config.warnings if "missing" in w.message) == ["also-lost", "lost"]
    del objects["lost"], objects["also-lost"]
    config = builder.build(_snapshot(objects, backends), SETTINGS)
    assert [w.name for w in config.warnings] == ["two"]
    assert_same(config, build(_snapshot(objects, backends), SETTINGS))


def test_the_builder_holds_nothing_of_deleted_objects():
    builder = Builder()
    objects = _base()
    backends = _backends()
    builder.build(_snapshot(objects, backends), SETTINGS)
    builder.build(Snapshot(), SETTINGS)
    assert builder.work.hosts == 3
    assert builder._ingresses == {} and builder._groups == {} and builder._clusters == {}
    assert builder._members == {} and builder._uses == {} and builder._in_use == {} and builder._cluster_order == []
    assert builder.build(Snapshot(), SETTINGS).checksum == build(Snapshot(), SETTINGS).checksum


def test_a_crowded_host_and_many_clusters_come_and_go():
    """Past a few members a host's Ingresses are kept in a set, past a few clusters the order is re-sorted."""
    builder = Builder()
    world = World()
    names = [f"svc{n}" for n in range(40)]
    for n, name in enumerate(names):
        world.put("ingresses", ("default", name), ingress(name, rule("crowded.test", path(f"/{n % 7}", name)),
                                                           created=f"2020-01-{1 + n % 28:02d}T00:00:00Z"))
    for obj in backend_world(*names):
        meta = obj["metadata"]
        if obj["kind"] == "Service":
            world.put("services", (meta["namespace"], meta["name"]), obj)
        else:
            world.put("endpoint_slices", (meta["namespace"], meta["labels"]["kubernetes.io/service-name"],
                                          meta["name"]), obj)
    sampler = random.Random(8)
    config = check_step(builder, world.snapshot(), SETTINGS, sampler)
    assert len(config.clusters) == 7  # seven paths, each won by its oldest claimant
    rng = random.Random(7)
    for _ in range(30):
        name = rng.choice(names)
        if rng.random() < 0.5:
            world.put("ingresses", ("default", name), None)
        else:
            world.put("ingresses", ("default", name), ingress(name, rule("crowded.test", path(f"/{name}", name))))
        check_step(builder, world.snapshot(), SETTINGS, sampler)
    for name in names:
        world.put("ingresses", ("default", name), None)
    assert check_step(builder, world.snapshot(), SETTINGS, sampler).table.hosts == {}


class _Unreadable(dict):
    """A snapshot mapping that fails half way through being read (no object can do this; a bug could)."""

    def items(self):  # type: ignore[override]
        yield from list(super().items())[:1]
        raise RuntimeError("unreadable")


def test_a_build_that_raises_leaves_the_next_one_starting_over():
    builder = Builder()
    objects = _base()
    backends = _backends()
    good = _snapshot(objects, backends)
    builder.build(good, SETTINGS)
    objects["three"] = ingress("three", rule("c.test", path("/v2", "db")))
    broken = _snapshot(objects, backends)
    with pytest.raises(RuntimeError):
        builder.build(Snapshot(ingresses=_Unreadable(broken.ingresses), services=broken.services,
                               endpoint_slices=broken.endpoint_slices), SETTINGS)
    config = builder.build(broken, SETTINGS)
    assert builder.work.ingresses == 3  # everything parsed again: nothing half-updated was trusted
    assert_same(config, build(broken, SETTINGS))
    assert config.checksum == build(broken, SETTINGS).checksum


# ---------------------------------------------------------------------- Gateway API objects

GATEWAY_NAMES = ("g1", "g2", "g3")
ROUTE_NAMES = ("r1", "r2", "r3", "r4", "r5")
GATEWAY_HOSTS = (None, None, "a.test", "*.c.test", "x.c.test", "*.test", "b.test", "Bad_Host")
ROUTE_HOSTS = ("a.test", "x.c.test", "y.z.c.test", "*.c.test", "*.test", "b.test", "other.test", "*.z.c.test")
LISTENER_PORTS = (80, 80, 443, 443, 8080, 9000, 70000)
ROUTE_PATHS = ("/", "/a", "/a/", "/a/b", "/b", "/%61", "/a/../b", "relative", "/x[", "^/a.*$")
GROUP = "gateway.networking.k8s.io"


def random_gateway_class(rng: random.Random, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"controllerName": rng.choice(("pyngress.dev/gateway-controller",) * 3 + ("example.com/x",))}
    if rng.random() < 0.1:
        spec["parametersRef"] = {"group": "x.io", "kind": "Params", "name": "p"}
    obj = {"apiVersion": f"{GROUP}/v1", "kind": "GatewayClass", "spec": spec,
           "metadata": {"name": name, "generation": rng.randint(1, 3)}}
    return _maybe_damage(obj, rng, 0.1)


def random_listener(rng: random.Random, index: int) -> dict[str, Any]:
    protocol = rng.choice(("HTTP", "HTTP", "HTTPS", "HTTPS", "TCP"))
    item: dict[str, Any] = {"name": rng.choice((f"l{index}", f"l{index}", "l0")), "port": rng.choice(LISTENER_PORTS),
                            "protocol": protocol}
    host = rng.choice(GATEWAY_HOSTS)
    if host is not None:
        item["hostname"] = host
    source = rng.choice(("Same", "All", "All", "Selector", None))
    if source is not None:
        namespaces: dict[str, Any] = {"from": source}
        if source == "Selector":
            namespaces["selector"] = rng.choice(({"matchLabels": {"team": "yes"}},
                                                 {"matchExpressions": [{"key": "team", "operator": "Exists"}]}))
        item["allowedRoutes"] = {"namespaces": namespaces}
        if rng.random() < 0.15:
            item["allowedRoutes"]["kinds"] = [{"kind": rng.choice(("HTTPRoute", "TLSRoute"))}]
    if protocol == "HTTPS" and rng.random() < 0.9:
        ref: dict[str, Any] = {"name": rng.choice(("cert", "cert", "missing"))}
        if rng.random() < 0.3:
            ref["namespace"] = rng.choice(NAMESPACES)
        item["tls"] = {"certificateRefs": [ref]}
    return item


def random_gateway(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    listeners = [random_listener(rng, index) for index in range(rng.randint(1, 3))]
    obj = {"apiVersion": f"{GROUP}/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": namespace, "generation": rng.randint(1, 3),
                        "creationTimestamp": rng.choice(STAMPS)},
           "spec": {"gatewayClassName": rng.choice(("pyngress", "pyngress", "other")), "listeners": listeners}}
    return _maybe_damage(obj, rng, 0.1)


def random_match(rng: random.Random) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if rng.random() < 0.8:
        item["path"] = {"type": rng.choice(("PathPrefix", "PathPrefix", "Exact", "RegularExpression")),
                        "value": rng.choice(ROUTE_PATHS)}
    if rng.random() < 0.3:
        item["headers"] = [{"name": rng.choice(("version", "Version", "color")), "value": rng.choice(("one", "two"))}
                           for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.2:
        item["queryParams"] = [{"name": "q", "value": rng.choice(("1", "2")), "type": rng.choice(("Exact",
                                                                                               "RegularExpression"))}]
    if rng.random() < 0.2:
        item["method"] = rng.choice(("GET", "POST", "BREW"))
    return item


def random_backend_ref(rng: random.Random) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": rng.choice(SERVICE_NAMES), "port": rng.choice((80, 80, 9000, 443, 8080))}
    if rng.random() < 0.3:
        ref["weight"] = rng.choice((0, 1, 3))
    if rng.random() < 0.2:
        ref["namespace"] = rng.choice(NAMESPACES)
    if rng.random() < 0.05:
        ref["kind"] = "ServiceImport"
    if rng.random() < 0.15:
        ref["filters"] = [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "b",
                                                                                               "value": "1"}]}}]
    return ref


def random_filter(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(("RequestRedirect", "URLRewrite", "RequestHeaderModifier", "ResponseHeaderModifier",
                       "RequestMirror", "CORS", "ExtensionRef", "Unknown"))
    if kind == "RequestRedirect":
        return {"type": kind, "requestRedirect": {"statusCode": rng.choice((301, 302, 418)),
                                                  "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/n"}}}
    if kind == "URLRewrite":
        return {"type": kind, "urlRewrite": {"hostname": "up.test"}}
    if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
        field = kind[0].lower() + kind[1:]
        return {"type": kind, field: {"add": [{"name": "x-a", "value": "1"}], "remove": ["x-b"]}}
    if kind == "RequestMirror":
        return {"type": kind, "requestMirror": {"backendRef": random_backend_ref(rng), "percent": 50}}
    if kind == "CORS":
        return {"type": kind, "cors": {"allowOrigins": ["*"], "allowMethods": ["GET"]}}
    if kind == "ExtensionRef":
        return {"type": kind, "extensionRef": {"group": "x.io", "kind": "F", "name": "f"}}
    return {"type": kind}


def random_http_route(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    parents = []
    for _ in range(rng.randint(0, 2)):
        ref: dict[str, Any] = {"name": rng.choice(GATEWAY_NAMES)}
        if rng.random() < 0.5:
            ref["namespace"] = rng.choice(NAMESPACES)
        if rng.random() < 0.2:
            ref["sectionName"] = rng.choice(("l0", "l1", "l2"))
        if rng.random() < 0.1:
            ref["port"] = rng.choice((80, 443, 81))
        parents.append(ref)
    spec: dict[str, Any] = {"parentRefs": parents}
    if rng.random() < 0.6:
        spec["hostnames"] = rng.sample(ROUTE_HOSTS, rng.randint(1, 3))
    rules = []
    for _ in range(rng.randint(0, 3)):
        item: dict[str, Any] = {}
        if rng.random() < 0.8:
            item["matches"] = [random_match(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.85:
            item["backendRefs"] = [random_backend_ref(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.3:
            item["filters"] = [random_filter(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.1:
            item["timeouts"] = {"request": rng.choice(("1s", "0s", "bogus"))}
        if rng.random() < 0.2:
            item["name"] = "named"
        rules.append(item)
    if rules:
        spec["rules"] = rules
    obj = {"apiVersion": f"{GROUP}/v1", "kind": "HTTPRoute", "spec": spec,
           "metadata": {"name": name, "namespace": namespace, "generation": rng.randint(1, 3),
                        "creationTimestamp": rng.choice(STAMPS)}}
    return _maybe_damage(obj, rng, 0.1)


def random_grpc_match(rng: random.Random) -> dict[str, Any]:
    item: dict[str, Any] = {}
    form = rng.random()
    if form < 0.3:
        item["method"] = {"service": rng.choice(("pkg.A", "pkg.B")), "method": rng.choice(("Get", "List"))}
    elif form < 0.45:
        item["method"] = {"service": rng.choice(("pkg.A", "pkg.B"))}
    elif form < 0.55:
        item["method"] = {"method": "Get"}
    elif form < 0.65:
        item["method"] = {"type": "RegularExpression", "service": rng.choice(("pkg\\..*", "(")), "method": "L.*"}
    elif form < 0.7:
        item["method"] = {"type": "Exact"}  # invalid: neither service nor method
    if rng.random() < 0.3:
        item["headers"] = [{"name": "x-v", "value": rng.choice(("1", "2"))}]
    return item


def random_grpc_route(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    """An HTTPRoute's shape with GRPCRoute matches (its HTTP-only filters drop their rules, as they should)."""
    obj = random_http_route(rng, namespace, name)
    obj["kind"] = "GRPCRoute"
    spec = obj.get("spec")
    rules = spec.get("rules") if isinstance(spec, dict) else None
    for item in rules if isinstance(rules, list) else ():
        if isinstance(item, dict) and isinstance(item.get("matches"), list):
            item["matches"] = [random_grpc_match(rng) for _ in item["matches"]]
            item.pop("timeouts", None)
    return obj


def random_grant(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    obj = {"apiVersion": f"{GROUP}/v1beta1", "kind": "ReferenceGrant",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"from": [{"group": GROUP, "kind": rng.choice(("HTTPRoute", "Gateway")),
                              "namespace": rng.choice(NAMESPACES)}],
                    "to": [{"group": "", "kind": rng.choice(("Service", "Secret")),
                            **({"name": rng.choice((*SERVICE_NAMES, "cert"))} if rng.random() < 0.5 else {})}]}}
    return _maybe_damage(obj, rng, 0.1)


def random_namespace(rng: random.Random, name: str) -> dict[str, Any]:
    labels = {"team": "yes"} if rng.random() < 0.5 else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def random_secret(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    good = rng.random() < 0.8
    crt = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n" if good else b"junk"
    key = b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"
    import base64
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


class GatewayWorld(World):
    """World with the Gateway API kinds (and Namespaces and Secrets) as well."""

    KINDS = (*World.KINDS, "gateway_classes", "gateways", "http_routes", "grpc_routes", "reference_grants",
             "namespaces", "secrets")

    def step(self, rng: random.Random) -> None:
        if rng.random() < 0.45:
            super().step(rng)
            return
        roll = rng.random()
        namespace = rng.choice(NAMESPACES)
        if roll < 0.1:
            key = rng.choice(("pyngress", "other"))
            kind, make = "gateway_classes", lambda: random_gateway_class(rng, key)
        elif roll < 0.35:
            key = (namespace, rng.choice(GATEWAY_NAMES))
            kind, make = "gateways", lambda: random_gateway(rng, *key)
        elif roll < 0.68:
            key = (namespace, rng.choice(ROUTE_NAMES))
            kind, make = "http_routes", lambda: random_http_route(rng, *key)
        elif roll < 0.8:  # GRPCRoutes share names with HTTPRoutes, and hostnames (one kind wins a listener's)
            key = (namespace, rng.choice(ROUTE_NAMES))
            kind, make = "grpc_routes", lambda: random_grpc_route(rng, *key)
        elif roll < 0.88:
            key = (namespace, rng.choice(("grant-a", "grant-b")))
            kind, make = "reference_grants", lambda: random_grant(rng, *key)
        elif roll < 0.94:
            key = namespace
            kind, make = "namespaces", lambda: random_namespace(rng, key)
        else:
            key = (namespace, "cert")
            kind, make = "secrets", lambda: random_secret(rng, *key)
        action = rng.random()
        if action < 0.15:
            self.put(kind, key, None)
        elif action < 0.18:
            self.put(kind, key, _junk(rng))
        else:
            self.put(kind, key, make())


def _full_host(routes: VirtualHost) -> tuple[Any, ...]:
    return (dict(routes.exact), dict(routes.prefix), routes.regex, routes.default)


def full_contents(table: RouteTable) -> tuple[Any, ...]:
    return (
        {host: _full_host(routes) for host, routes in table.hosts.items()},
        {suffix: _full_host(routes) for suffix, routes in table.wildcards.items()},
        {suffix: _full_host(routes) for suffix, routes in table.suffixes.items()},
        None if table.any_host is None else _full_host(table.any_host),
    )


def listener_contents(config: Config) -> dict[int, tuple[Any, ...]]:
    return {local: (item.port, item.protocol, dict(item.certificates), item.ingress, full_contents(item.table))
            for local, item in config.listeners.items()}


def check_gateway_step(builder: Builder, snap: Snapshot, settings: Settings) -> Config:
    """The incremental build equals a fresh one, listeners and status included; the Ingress table equals
    a build of the snapshot without Gateway objects."""
    got = builder.build(snap, settings)
    fresh = build(snap, settings)
    assert table_contents(got.table) == table_contents(fresh.table)
    without = replace(snap, gateway_classes={}, gateways={}, http_routes={}, grpc_routes={}, reference_grants={})
    assert table_contents(got.table) == table_contents(build(without, settings).table)  # Ingress stays Ingress
    assert list(got.clusters.items()) == list(fresh.clusters.items())
    assert got.warnings == fresh.warnings
    assert listener_contents(got) == listener_contents(fresh)
    assert got.gateway_status == fresh.gateway_status
    assert got.policy_status == fresh.policy_status
    assert got.tls_policy_status == fresh.tls_policy_status
    assert got.checksum == fresh.checksum == checksum(got.table, got.clusters, got.listeners, got.gateway_status,
                                                      got.policy_status, got.tls_policy_status)
    assert not [w for w in got.warnings if any(net in w.message for net in SAFETY_NETS)], got.warnings
    return got


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("GW_SEEDS", "10"))))
def test_random_gateway_changes_build_what_a_fresh_build_does(seed):
    rng = random.Random(1000 + seed)
    world = GatewayWorld()
    builder = Builder()
    settings = SETTINGS
    previous: tuple[Any, ...] | None = None
    previous_checksum = ""
    served = 0
    for _ in range(150):
        for _ in range(rng.choice((1, 1, 2, 4))):
            world.step(rng)
        if rng.random() < 0.03:
            settings = rng.choice((SETTINGS, SETTINGS,
                                   Settings(watch_ingress_without_class=True, gateways=("default/g1",)),
                                   Settings(watch_ingress_without_class=True, gateway_port_offset=0)))
        config = check_gateway_step(builder, world.snapshot(), settings)
        served += bool(config.listeners)
        contents = (table_contents(config.table), dict(config.clusters), listener_contents(config),
                    config.gateway_status)
        if previous is not None:
            assert (config.checksum == previous_checksum) == (contents == previous)
        previous, previous_checksum = contents, config.checksum
    assert served  # the random objects do make listeners


# ---------------------------------------------------------------------- traffic policies

POLICY_NAMES = ("p1", "p2", "p3")
POLICY_SECTIONS: tuple[tuple[str, Any], ...] = (
    ("loadBalancer", {"type": "Random"}),
    ("loadBalancer", {"type": "ConsistentHash", "consistentHash": {"type": "Header", "header": {"name": "x-user"}}}),
    ("loadBalancer", {"type": "ConsistentHash"}),  # refused: no consistentHash
    ("retry", {"numRetries": 1}),
    ("retry", {"numRetries": 3, "retryOn": {"triggers": ["5xx", "refused-stream"]}}),
    ("retry", {"numRetries": -2}),
    ("circuitBreaker", {"maxConnections": 5}),
    ("circuitBreaker", {"maxConnections": 7}),
    ("healthCheck", {"passive": {"consecutive5XxErrors": 2}, "active": {"type": "TCP"}}),
    ("faultInjection", {"abort": {"httpStatus": 503, "percentage": 10}}),
    ("rateLimit", {"type": "Local", "local": {"rules": [{"limit": {"requests": 5, "unit": "Second"}}]}}),
    ("sessionPersistence", {"sessionName": "s"}),
    ("timeout", {"http": {"requestTimeout": "5s"}}),
    ("bogus", {}),
)


def random_target(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(("Service", "Service", "Ingress", "HTTPRoute", "Gateway", "Secret"))
    group = {"Service": "", "Ingress": "networking.k8s.io", "Secret": ""}.get(kind, GROUP)
    names = {"Service": SERVICE_NAMES, "Ingress": INGRESS_NAMES, "HTTPRoute": ROUTE_NAMES, "Gateway": GATEWAY_NAMES,
             "Secret": ("cert",)}[kind]
    ref: dict[str, Any] = {"group": group, "kind": kind, "name": rng.choice(names)}
    if kind in ("HTTPRoute", "Gateway") and rng.random() < 0.3:
        ref["sectionName"] = rng.choice(("named", "l0", "l1"))
    if kind == "Service" and rng.random() < 0.3:
        ref["sectionName"] = rng.choice(("http", "grpc"))
    return ref


def random_traffic_policy(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"targetRefs": [random_target(rng) for _ in range(rng.randint(1, 3))]}
    for field, value in rng.sample(POLICY_SECTIONS, rng.randint(1, 3)):
        spec[field] = copy.deepcopy(value)  # damage may edit it in place
    obj = {"apiVersion": "pyngress.dev/v1alpha1", "kind": "BackendTrafficPolicy", "spec": spec,
           "metadata": {"name": name, "namespace": namespace, "generation": rng.randint(1, 3),
                        "creationTimestamp": rng.choice(STAMPS)}}
    return _maybe_damage(obj, rng, 0.1)


def random_tls_policy(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    validation: dict[str, Any] = {"hostname": rng.choice(("web.internal", "Bad_Host"))}
    if rng.random() < 0.3:
        validation["wellKnownCACertificates"] = "System"
    else:
        validation["caCertificateRefs"] = [{"group": "", "kind": "ConfigMap", "name": rng.choice(("ca", "other"))}]
    ref = {"group": "", "kind": "Service", "name": rng.choice(SERVICE_NAMES)}
    if rng.random() < 0.3:
        ref["sectionName"] = "http"
    obj = {"apiVersion": f"{GROUP}/v1", "kind": "BackendTLSPolicy",
           "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rng.choice(STAMPS)},
           "spec": {"targetRefs": [ref], "validation": validation}}
    return _maybe_damage(obj, rng, 0.1)


def random_config_map(rng: random.Random, namespace: str, name: str) -> dict[str, Any]:
    pem = rng.choice(("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n",
                      "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n", "not a certificate"))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"ca.crt": pem}}


def with_native_fields(rng: random.Random, route: Any) -> Any:
    """An HTTPRoute with its rules' own retry and sessionPersistence, sometimes."""
    spec = route.get("spec") if isinstance(route, dict) else None
    rules = spec.get("rules") if isinstance(spec, dict) else None
    for item in rules if isinstance(rules, list) else ():
        if isinstance(item, dict) and rng.random() < 0.3:
            item["retry"] = rng.choice(({"attempts": 2, "codes": [503]}, {"attempts": 0}, {"backoff": "10ms"}))
        if isinstance(item, dict) and rng.random() < 0.2:
            item["sessionPersistence"] = rng.choice(({"sessionName": "a"}, {"type": "Header"}))
    return route


class PolicyWorld(GatewayWorld):
    """GatewayWorld with traffic policies, BackendTLSPolicies and CA ConfigMaps as well."""

    KINDS = (*GatewayWorld.KINDS, "backend_traffic_policies", "backend_tls_policies", "config_maps")

    def step(self, rng: random.Random) -> None:
        if rng.random() < 0.6:
            super().step(rng)
            key = (rng.choice(NAMESPACES), rng.choice(ROUTE_NAMES))
            route = self.objects["http_routes"].get(key)
            if route is not None and rng.random() < 0.3:
                self.put("http_routes", key, with_native_fields(rng, copy.deepcopy(route)))
            return
        namespace = rng.choice(NAMESPACES)
        roll = rng.random()
        if roll < 0.7:
            key = (namespace, rng.choice(POLICY_NAMES))
            kind, make = "backend_traffic_policies", lambda: random_traffic_policy(rng, *key)
        elif roll < 0.85:
            key = (namespace, rng.choice(("t1", "t2")))
            kind, make = "backend_tls_policies", lambda: random_tls_policy(rng, *key)
        else:
            key = (namespace, "ca")
            kind, make = "config_maps", lambda: random_config_map(rng, *key)
        action = rng.random()
        if action < 0.15:
            self.put(kind, key, None)
        elif action < 0.18:
            self.put(kind, key, _junk(rng))
        else:
            self.put(kind, key, make())


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("POLICY_SEEDS", "10"))))
def test_random_policy_changes_build_what_a_fresh_build_does(seed):
    rng = random.Random(5000 + seed)
    world = PolicyWorld()
    builder = Builder()
    previous: tuple[Any, ...] | None = None
    previous_checksum = ""
    under_policy = 0
    for _ in range(150):
        for _ in range(rng.choice((1, 1, 2, 4))):
            world.step(rng)
        config = check_gateway_step(builder, world.snapshot(), SETTINGS)
        under_policy += any(cluster.policy is not None for cluster in config.clusters.values())
        under_policy += any(route.policy is not None for route in config.routes())
        contents = (table_contents(config.table), dict(config.clusters), listener_contents(config),
                    config.gateway_status, config.policy_status, config.tls_policy_status)
        if previous is not None:
            assert (config.checksum == previous_checksum) == (contents == previous)
        previous, previous_checksum = contents, config.checksum
    assert under_policy  # the random policies do reach routes and clusters


def _gateway_objects() -> dict[str, Any]:
    """A Gateway of ours on port 80 (the Ingress port) and two HTTPRoutes on two hosts."""
    from .gateway.objects import backend as gw_backend
    from .gateway.objects import gateway, gateway_class, http_route, listener, parent
    from .gateway.objects import rule as gw_rule
    return {
        "class": gateway_class(),
        "gateway": gateway("edge", listener("http", 80, namespaces="All"), namespace="default"),
        "r1": http_route("r1", gw_rule(backends=[gw_backend("web", 80)]), parents=[parent("edge")],
                         namespace="default", hostnames=["g1.test"]),
        "r2": http_route("r2", gw_rule(backends=[gw_backend("missing", 80)]), parents=[parent("edge")],
                         namespace="default", hostnames=["g2.test"]),
    }


def _gw_snapshot(ingresses: dict[str, Any], backends: dict[str, Any], gateway_objects: dict[str, Any]) -> Snapshot:
    from .gateway.objects import snapshot as gw_snapshot
    return gw_snapshot(*ingresses.values(), *backends.values(), *gateway_objects.values())


def test_unchanged_gateway_objects_are_not_translated_again():
    builder = Builder()
    objects, backends, gateway_objects = _base(), _backends(), _gateway_objects()
    first = builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    assert builder.work.gateways == 1 and builder.work.listener_hosts == 3  # g1, g2 and the listener's "" host
    assert 8080 in first.listeners
    backends["db-slice"] = endpoint_slice("db", [endpoint("10.0.2.7")])
    config = builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    assert (builder.work.gateways, builder.work.listener_hosts, builder.work.clusters) == (0, 0, 1)
    assert config.listeners is first.listeners
    # An Ingress host changes: the shared port's table is made again, but nothing is merged again.
    objects["three"] = ingress("three", rule("c.test", path("/v2", "db")))
    config = builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    assert (builder.work.gateways, builder.work.listener_hosts) == (0, 0)
    assert config.listeners[8080].table.match("c.test", "/v2/x").path == "/v2"
    assert check_gateway_step(Builder(), _gw_snapshot(objects, backends, gateway_objects), SETTINGS).checksum \
        == config.checksum


def test_one_http_route_change_merges_only_its_hosts():
    from .gateway.objects import backend as gw_backend
    from .gateway.objects import http_route, parent
    from .gateway.objects import rule as gw_rule
    builder = Builder()
    objects, backends, gateway_objects = _base(), _backends(), _gateway_objects()
    builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    gateway_objects["r1"] = http_route("r1", gw_rule(backends=[gw_backend("api", 80)]), parents=[parent("edge")],
                                       namespace="default", hostnames=["g1.test"])
    config = builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    assert (builder.work.gateways, builder.work.listener_hosts) == (1, 1)
    assert config.listeners[8080].table.match("g1.test", "/").cluster == "default/api:80"
    assert_same(config, build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS))


def test_a_referenced_service_appearing_translates_again():
    builder = Builder()
    objects, backends, gateway_objects = _base(), _backends(), _gateway_objects()
    config = builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    missing = config.listeners[8080].table.match("g2.test", "/")
    assert missing.backends is not None and missing.backends.backends[0].cluster == ""  # every request gets 500
    backends["other"] = service("other", service_port(80, target=8080), namespace="team")
    builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    assert builder.work.gateways == 0  # a Service no backendRef names
    backends["missing"] = service("missing", service_port(80, target=8080))
    config = builder.build(_gw_snapshot(objects, backends, gateway_objects), SETTINGS)
    assert (builder.work.gateways, builder.work.listener_hosts) == (1, 1)
    assert config.listeners[8080].table.match("g2.test", "/").cluster == "default/missing:80"
    status = config.gateway_status.routes[("default", "r2")].parents[0].condition("ResolvedRefs")
    assert status is not None and status.status == "True"
    check_gateway_step(Builder(), _gw_snapshot(objects, backends, gateway_objects), SETTINGS)
