"""ObjectCache: indices, snapshots that never change under the reader, and change classification."""

from __future__ import annotations

import copy

import pytest

from proxy.kube.cache import KINDS, CacheChange, ObjectCache


def meta(name: str, namespace: str | None = "default", **extra) -> dict:
    m = {"name": name, **extra}
    if namespace is not None:
        m["namespace"] = namespace
    return m


def ingress(name: str, *, ns: str = "default", service: str = "web", tls_secret: str | None = None,
            rv: str = "1") -> dict:
    spec: dict = {
        "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
                                       "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}],
    }
    if tls_secret:
        spec["tls"] = [{"hosts": ["a.example.com"], "secretName": tls_secret}]
    return {"metadata": meta(name, ns, resourceVersion=rv), "spec": spec}


def endpoint_slice(name: str, service: str | None, *, ns: str = "default", ip: str = "10.0.0.1", rv: str = "1") -> dict:
    labels = {"kubernetes.io/service-name": service} if service else {}
    return {
        "metadata": meta(name, ns, labels=labels, resourceVersion=rv),
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def secret(name: str, *, ns: str = "default", data: str = "x", rv: str = "1") -> dict:
    return {"metadata": meta(name, ns, resourceVersion=rv), "type": "kubernetes.io/tls",
            "data": {"tls.crt": data, "tls.key": data}}


@pytest.fixture
def cache_and_changes():
    cache = ObjectCache()
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    return cache, changes


def test_replace_and_snapshot_indices(cache_and_changes):
    cache, changes = cache_and_changes
    cache.replace("Ingress", [ingress("a"), ingress("b", ns="other")])
    cache.replace("IngressClass", [{"metadata": meta("pyngress", None), "spec": {"controller": "x"}}])
    cache.replace("EndpointSlice", [endpoint_slice("web-1", "web"), endpoint_slice("web-2", "web", ip="10.0.0.2"),
                                    endpoint_slice("orphan", None)])
    snap = cache.snapshot()
    assert set(snap.ingresses) == {("default", "a"), ("other", "b")}
    assert set(snap.ingress_classes) == {"pyngress"}
    assert set(snap.endpoint_slices) == {("default", "web")}
    assert set(snap.endpoint_slices[("default", "web")]) == {"web-1", "web-2"}
    assert changes == [
        CacheChange(routes=True),
        CacheChange(routes=True),
        CacheChange(endpoints=frozenset({("default", "web")})),
    ]


def test_snapshot_is_read_only_and_never_changes_under_the_reader(cache_and_changes):
    cache, _ = cache_and_changes
    cache.replace("Ingress", [ingress("a")])
    cache.replace("EndpointSlice", [endpoint_slice("web-1", "web")])
    snap = cache.snapshot()
    assert cache.snapshot() is snap  # nothing changed: the same snapshot, no copy
    with pytest.raises(TypeError):
        snap.ingresses[("default", "x")] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        snap.endpoint_slices[("default", "web")]["x"] = {}  # type: ignore[index]

    cache.apply("Ingress", "ADDED", ingress("b"))
    cache.apply("Ingress", "DELETED", ingress("a"))
    cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("web-1", "web", ip="10.9.9.9", rv="2"))
    cache.apply("EndpointSlice", "ADDED", endpoint_slice("web-2", "web", ip="10.0.0.2"))
    cache.replace("Service", [{"metadata": meta("web"), "spec": {"ports": [{"port": 80}]}}])

    assert set(snap.ingresses) == {("default", "a")}
    assert set(snap.endpoint_slices[("default", "web")]) == {"web-1"}
    assert snap.endpoint_slices[("default", "web")]["web-1"]["endpoints"][0]["addresses"] == ["10.0.0.1"]
    assert dict(snap.services) == {}

    now = cache.snapshot()
    assert now is not snap
    assert set(now.ingresses) == {("default", "b")}
    assert set(now.endpoint_slices[("default", "web")]) == {"web-1", "web-2"}
    assert now.endpoint_slices[("default", "web")]["web-1"]["endpoints"][0]["addresses"] == ["10.9.9.9"]
    assert set(now.services) == {("default", "web")}


def test_content_equal_updates_are_not_changes(cache_and_changes):
    cache, changes = cache_and_changes
    cache.apply("Ingress", "ADDED", ingress("a"))
    snap = cache.snapshot()
    changes.clear()

    bumped = ingress("a", rv="99")
    bumped["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    bumped["kind"] = "Ingress"
    bumped["apiVersion"] = "networking.k8s.io/v1"
    cache.apply("Ingress", "MODIFIED", bumped)
    cache.replace("Ingress", [copy.deepcopy(bumped)])
    cache.apply("Ingress", "DELETED", ingress("never-seen"))
    assert changes == []
    assert cache.snapshot() is snap

    # generation and annotations are content
    annotated = ingress("a", rv="100")
    annotated["metadata"]["annotations"] = {"x": "y"}
    cache.apply("Ingress", "MODIFIED", annotated)
    assert changes == [CacheChange(routes=True)]


def test_managed_fields_are_not_kept():
    cache = ObjectCache()
    obj = ingress("a")
    obj["metadata"]["managedFields"] = [{"manager": "m"}]
    cache.apply("Ingress", "ADDED", obj)
    stored = cache.snapshot().ingresses[("default", "a")]
    assert "managedFields" not in stored["metadata"]
    assert "managedFields" in obj["metadata"]  # the caller's dict is not modified


def test_replace_reports_only_what_differs(cache_and_changes):
    cache, changes = cache_and_changes
    cache.replace("EndpointSlice", [endpoint_slice("a-1", "a"), endpoint_slice("b-1", "b")])
    changes.clear()
    cache.replace("EndpointSlice", [endpoint_slice("a-1", "a", rv="7"), endpoint_slice("b-1", "b", ip="10.1.1.1"),
                                    endpoint_slice("c-1", "c")])
    assert changes == [CacheChange(endpoints=frozenset({("default", "b"), ("default", "c")}))]
    changes.clear()
    # a relist that lost an object: it disappears
    cache.replace("EndpointSlice", [endpoint_slice("a-1", "a"), endpoint_slice("b-1", "b", ip="10.1.1.1")])
    assert changes == [CacheChange(endpoints=frozenset({("default", "c")}))]
    assert ("default", "c") not in cache.snapshot().endpoint_slices


def test_relabelled_slice_moves_between_services(cache_and_changes):
    cache, changes = cache_and_changes
    cache.replace("EndpointSlice", [endpoint_slice("s", "old"), endpoint_slice("t", "old", ip="10.0.0.5")])
    changes.clear()
    cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("s", "new"))
    assert changes == [CacheChange(endpoints=frozenset({("default", "old"), ("default", "new")}))]
    snap = cache.snapshot()
    assert set(snap.endpoint_slices[("default", "old")]) == {"t"}
    assert set(snap.endpoint_slices[("default", "new")]) == {"s"}

    cache.apply("EndpointSlice", "DELETED", endpoint_slice("t", "old"))
    assert ("default", "old") not in cache.snapshot().endpoint_slices
    # losing the label takes it out of every group
    cache.apply("EndpointSlice", "MODIFIED", endpoint_slice("s", None))
    assert dict(cache.snapshot().endpoint_slices) == {}
    assert changes[-1] == CacheChange(endpoints=frozenset({("default", "new")}))


def test_same_slice_name_in_two_namespaces():
    cache = ObjectCache()
    cache.apply("EndpointSlice", "ADDED", endpoint_slice("s", "web", ns="a"))
    cache.apply("EndpointSlice", "ADDED", endpoint_slice("s", "web", ns="b"))
    cache.apply("EndpointSlice", "DELETED", endpoint_slice("s", "web", ns="a"))
    assert set(cache.snapshot().endpoint_slices) == {("b", "web")}


def test_endpoints_changes_name_their_service(cache_and_changes):
    cache, changes = cache_and_changes
    ep = {"metadata": meta("web", "shop"), "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    cache.apply("Endpoints", "ADDED", ep)
    assert changes == [CacheChange(endpoints=frozenset({("shop", "web")}))]
    assert cache.snapshot().endpoints[("shop", "web")]["subsets"][0]["addresses"][0]["ip"] == "10.0.0.1"


def test_service_and_class_changes_rebuild_routes(cache_and_changes):
    cache, changes = cache_and_changes
    cache.apply("Service", "ADDED", {"metadata": meta("web"), "spec": {"ports": [{"port": 80}]}})
    cache.apply("IngressClass", "ADDED", {"metadata": meta("c", None), "spec": {"controller": "x"}})
    cache.apply("IngressClass", "DELETED", {"metadata": meta("c", None)})
    assert changes == [CacheChange(routes=True)] * 3


def test_secret_matters_only_when_referenced(cache_and_changes):
    cache, changes = cache_and_changes
    cache = ObjectCache(relevant_secrets={("ingress", "default-cert")})
    changes = []
    cache.subscribe(changes.append)

    cache.apply("Secret", "ADDED", secret("unrelated"))
    cache.apply("Secret", "ADDED", secret("tls"))
    assert changes == []
    assert ("default", "tls") in cache.snapshot().secrets  # kept, so a later reference finds it

    cache.apply("Ingress", "ADDED", ingress("a", tls_secret="tls"))
    changes.clear()
    cache.apply("Secret", "MODIFIED", secret("tls", data="new", rv="2"))
    cache.apply("Secret", "MODIFIED", secret("unrelated", data="new", rv="2"))
    cache.apply("Secret", "ADDED", secret("tls", ns="other"))  # same name, other namespace: not referenced
    assert changes == [CacheChange(routes=True)]

    cache.apply("Secret", "ADDED", secret("default-cert", ns="ingress"))
    assert changes[-1] == CacheChange(routes=True)
    changes.clear()

    # the reference goes away with the Ingress
    cache.apply("Ingress", "MODIFIED", ingress("a", rv="3"))
    changes.clear()
    cache.apply("Secret", "DELETED", secret("tls"))
    assert changes == []

    # a relist of Ingresses recounts references
    cache.replace("Ingress", [ingress("b", tls_secret="again")])
    changes.clear()
    cache.replace("Secret", [secret("again")])
    assert changes == [CacheChange(routes=True)]


def test_synced_after_every_kind_is_listed(cache_and_changes):
    cache, changes = cache_and_changes
    assert not cache.synced
    assert KINDS[-1] != "Secret"
    for kind in KINDS:
        if kind != "Secret":
            cache.mark_synced(kind)
            assert not cache.synced
    assert changes == []
    cache.mark_synced("Secret")
    assert cache.synced
    assert changes == [CacheChange(routes=True)]
    cache.mark_synced("Secret")
    assert len(changes) == 1

    partial = ObjectCache(kinds=("Ingress",))
    partial.mark_synced("Ingress")
    assert partial.synced


def test_bad_input():
    cache = ObjectCache()
    with pytest.raises(ValueError):
        cache.replace("Pod", [])
    with pytest.raises(ValueError):
        cache.apply("Ingress", "BOOKMARK", ingress("a"))
    with pytest.raises(ValueError):
        ObjectCache(kinds=("Pod",))
    # objects without a name are skipped, the rest is kept
    cache.replace("Ingress", [{"metadata": {}}, {"spec": {}}, ingress("ok")])
    assert set(cache.snapshot().ingresses) == {("default", "ok")}


def test_a_failing_subscriber_does_not_stop_others():
    cache = ObjectCache()
    seen = []

    def broken(change):
        raise RuntimeError("boom")

    cache.subscribe(broken)
    unsubscribe = cache.subscribe(seen.append)
    cache.apply("Ingress", "ADDED", ingress("a"))
    assert len(seen) == 1
    unsubscribe()
    cache.apply("Ingress", "ADDED", ingress("b"))
    assert len(seen) == 1


def _contents(cache: ObjectCache) -> dict:
    """Everything a builder can read, as plain comparable data."""
    snap = cache.snapshot()
    return {
        "ingresses": dict(snap.ingresses), "classes": dict(snap.ingress_classes), "services": dict(snap.services),
        "slices": {k: dict(v) for k, v in snap.endpoint_slices.items()}, "endpoints": dict(snap.endpoints),
        "secrets": dict(snap.secrets), "synced": cache.synced,
    }


def test_observed_operations_rebuild_an_equal_cache():
    """A mirror fed only the observed operations (pickled, as worker processes get them) equals the source,
    and a cache started late from operations() plus what follows equals it too."""
    import pickle

    source = ObjectCache()
    mirror = ObjectCache()
    seen: list = []
    source.observe(seen.append)
    source.observe(lambda op: mirror.perform(pickle.loads(pickle.dumps(op))))
    source.replace("Ingress", [ingress("a", tls_secret="tls"), ingress("b")])
    source.replace("EndpointSlice", [endpoint_slice("web-1", "web")])
    for kind in KINDS:
        if kind != "Secret":
            source.mark_synced(kind)
    assert not mirror.synced

    late = ObjectCache()
    for op in source.operations():
        late.perform(pickle.loads(pickle.dumps(op)))
    source.observe(late.perform)

    source.mark_synced("Secret")
    source.apply("Secret", "ADDED", secret("tls"))
    source.apply("EndpointSlice", "MODIFIED", endpoint_slice("web-1", "web", ip="10.0.0.9", rv="2"))
    deleted = ingress("b", rv="3")
    deleted["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    source.apply("Ingress", "DELETED", deleted)
    assert mirror.synced and late.synced
    assert _contents(mirror) == _contents(source) == _contents(late)
    assert set(source.snapshot().ingresses) == {("default", "a")}
    assert [op[0] for op in seen] == ["replace", "replace"] + ["synced"] * len(KINDS) + ["apply"] * 3
    assert "managedFields" not in seen[-1][2][1]["metadata"]  # bookkeeping is not relayed


def test_writes_that_change_nothing_are_not_observed():
    cache = ObjectCache()
    seen: list = []
    stop = cache.observe(seen.append)
    cache.replace("Ingress", [ingress("a")])
    cache.mark_synced("Ingress")
    assert len(seen) == 2
    cache.replace("Ingress", [ingress("a", rv="2")])  # only the resourceVersion moved
    cache.apply("Ingress", "MODIFIED", ingress("a", rv="3"))
    cache.apply("Ingress", "DELETED", ingress("gone"))
    cache.mark_synced("Ingress")
    cache.replace("Ingress", [{"metadata": {}}, ingress("a", rv="4")])  # a nameless object is dropped, not relayed
    assert len(seen) == 2
    stop()
    cache.apply("Ingress", "ADDED", ingress("b"))
    assert len(seen) == 2


def test_a_failing_observer_does_not_stop_the_write():
    cache = ObjectCache()
    changes: list = []
    seen: list = []
    cache.subscribe(changes.append)

    def broken(operation):
        raise RuntimeError("boom")

    cache.observe(broken)
    cache.observe(seen.append)
    cache.apply("Ingress", "ADDED", ingress("a"))
    assert ("default", "a") in cache.snapshot().ingresses
    assert len(seen) == 1 and len(changes) == 1
    with pytest.raises(ValueError):
        cache.perform(("patch", "Ingress", None))


# ---- the Gateway API kinds and Namespaces

GATEWAY_API = "gateway.networking.k8s.io/v1"


def gateway(name: str, *, ns: str = "default", refs: list[dict] | None = None, rv: str = "1",
            status: dict | None = None) -> dict:
    listeners: list[dict] = [{"name": "http", "port": 80, "protocol": "HTTP"}]
    if refs is not None:
        listeners.append({"name": "https", "port": 443, "protocol": "HTTPS",
                          "tls": {"mode": "Terminate", "certificateRefs": refs}})
    obj = {"apiVersion": GATEWAY_API, "kind": "Gateway", "metadata": meta(name, ns, resourceVersion=rv, generation=1),
           "spec": {"gatewayClassName": "pyngress", "listeners": listeners}}
    if status is not None:
        obj["status"] = status
    return obj


def http_route(name: str, *, ns: str = "default", rv: str = "1", status: dict | None = None,
               path: str = "/") -> dict:
    obj = {"apiVersion": GATEWAY_API, "kind": "HTTPRoute", "metadata": meta(name, ns, resourceVersion=rv),
           "spec": {"parentRefs": [{"name": "gw"}],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                               "backendRefs": [{"name": "web", "port": 80}]}]}}
    if status is not None:
        obj["status"] = status
    return obj


def namespace(name: str, *, labels: dict | None = None, rv: str = "1", **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": meta(name, None, labels={"kubernetes.io/metadata.name": name, **(labels or {})},
                             resourceVersion=rv, uid=f"uid-{name}", **extra),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def test_gateway_kinds_fill_their_snapshot_fields(cache_and_changes):
    cache, changes = cache_and_changes
    cache.replace("GatewayClass", [{"metadata": meta("pyngress", None), "spec": {"controllerName": "x"}}])
    cache.replace("Gateway", [gateway("gw")])
    cache.apply("HTTPRoute", "ADDED", http_route("r", ns="shop"))
    cache.apply("ReferenceGrant", "ADDED", {"metadata": meta("allow", "backends"), "spec": {"from": [], "to": []}})
    cache.apply("Namespace", "ADDED", namespace("shop"))
    snap = cache.snapshot()
    assert set(snap.gateway_classes) == {"pyngress"}
    assert set(snap.gateways) == {("default", "gw")}
    assert set(snap.http_routes) == {("shop", "r")}
    assert set(snap.reference_grants) == {("backends", "allow")}
    assert set(snap.namespaces) == {"shop"}
    assert cache.get("Namespace", "", "shop")["metadata"]["labels"]["kubernetes.io/metadata.name"] == "shop"
    assert cache.get("GatewayClass", "ignored", "pyngress") is not None  # cluster-scoped: keyed by name
    assert changes == [CacheChange(routes=True)] * 5
    # Snapshots of them never change under the reader either.
    cache.apply("HTTPRoute", "DELETED", http_route("r", ns="shop"))
    assert set(snap.http_routes) == {("shop", "r")} and dict(cache.snapshot().http_routes) == {}
    with pytest.raises(TypeError):
        snap.namespaces["x"] = {}  # type: ignore[index]


def test_every_gateway_api_change_rebuilds_routes_but_status_alone_does_not(cache_and_changes):
    cache, changes = cache_and_changes
    seen: list = []
    cache.observe(seen.append)
    cache.apply("HTTPRoute", "ADDED", http_route("r"))
    cache.apply("HTTPRoute", "MODIFIED", http_route("r", rv="2", path="/api"))
    assert changes == [CacheChange(routes=True)] * 2
    changes.clear()
    snap = cache.snapshot()

    # Our own status write, or another controller's entry in status.parents: kept (readers see the
    # current status), relayed, but no rebuild.
    parents = {"parents": [{"controllerName": "other.example/ctl", "parentRef": {"name": "gw"}, "conditions": []}]}
    cache.apply("HTTPRoute", "MODIFIED", http_route("r", rv="3", path="/api", status=parents))
    cache.replace("HTTPRoute", [http_route("r", rv="4", path="/api", status={"parents": []})])
    assert changes == []
    assert cache.get("HTTPRoute", "default", "r")["status"] == {"parents": []}
    assert cache.snapshot() is not snap  # a new snapshot holds the new status
    assert [op[0] for op in seen[-2:]] == ["apply", "replace"]

    # Spec, labels and annotations are content.
    labelled = http_route("r", rv="5", path="/api", status={"parents": []})
    labelled["metadata"]["labels"] = {"team": "a"}
    cache.apply("HTTPRoute", "MODIFIED", labelled)
    cache.replace("Gateway", [gateway("gw", status={"conditions": []})])
    cache.replace("Gateway", [gateway("gw", rv="2", status={"conditions": [{"type": "Accepted"}]})])
    cache.apply("Gateway", "DELETED", gateway("gw"))
    assert changes == [CacheChange(routes=True)] * 3


def test_namespaces_matter_only_by_their_labels(cache_and_changes):
    cache, changes = cache_and_changes
    seen: list = []
    cache.observe(seen.append)
    cache.apply("Namespace", "ADDED", namespace("team", labels={"env": "prod"}))
    stored = cache.get("Namespace", "", "team")
    assert set(stored) == {"apiVersion", "kind", "metadata"}  # spec and status are not kept
    assert set(stored["metadata"]) == {"name", "uid", "labels", "resourceVersion"}
    changes.clear()
    seen.clear()
    snap = cache.snapshot()

    churn = namespace("team", labels={"env": "prod"}, rv="2", annotations={"note": "x"})
    churn["status"] = {"phase": "Active", "conditions": [{"type": "NamespaceDeletionDiscoveryFailure"}]}
    churn["metadata"]["managedFields"] = [{"manager": "kube-controller-manager"}]
    cache.apply("Namespace", "MODIFIED", churn)
    terminating = namespace("team", labels={"env": "prod"}, rv="3", deletionTimestamp="2026-01-01T00:00:00Z")
    terminating["status"] = {"phase": "Terminating"}
    cache.replace("Namespace", [terminating])
    assert changes == [] and seen == []  # no rebuild, nothing relayed, the same snapshot
    assert cache.snapshot() is snap

    cache.apply("Namespace", "MODIFIED", namespace("team", labels={"env": "dev"}, rv="4"))
    assert changes == [CacheChange(routes=True)]
    assert cache.get("Namespace", "", "team")["metadata"]["labels"]["env"] == "dev"
    cache.apply("Namespace", "DELETED", namespace("team", rv="5"))
    assert changes == [CacheChange(routes=True)] * 2 and dict(cache.snapshot().namespaces) == {}


def test_gateway_certificate_refs_make_secrets_relevant(cache_and_changes):
    cache, changes = cache_and_changes
    refs = [
        {"name": "same-ns"},  # group "" and kind Secret are the CRD's defaults
        {"group": "", "kind": "Secret", "name": "other-ns", "namespace": "certs"},
        {"group": "example.com", "kind": "Secret", "name": "foreign-group"},
        {"kind": "ConfigMap", "name": "not-a-secret"},
    ]
    cache.apply("Gateway", "ADDED", gateway("gw", ns="edge", refs=refs))
    changes.clear()
    cache.apply("Secret", "ADDED", secret("same-ns", ns="edge"))
    cache.apply("Secret", "ADDED", secret("other-ns", ns="certs"))
    assert changes == [CacheChange(routes=True)] * 2
    changes.clear()
    cache.apply("Secret", "ADDED", secret("foreign-group", ns="edge"))
    cache.apply("Secret", "ADDED", secret("not-a-secret", ns="edge"))
    cache.apply("Secret", "ADDED", secret("same-ns", ns="default"))  # the Gateway's namespace, not another
    assert changes == []

    # An Ingress naming the same Secret keeps it relevant after the Gateway lets go of it.
    cache.apply("Ingress", "ADDED", ingress("i", ns="edge", tls_secret="same-ns"))
    cache.apply("Gateway", "MODIFIED", gateway("gw", ns="edge", refs=[{"name": "renamed"}], rv="2"))
    changes.clear()
    cache.apply("Secret", "MODIFIED", secret("same-ns", ns="edge", data="new", rv="2"))
    cache.apply("Secret", "MODIFIED", secret("other-ns", ns="certs", data="new", rv="2"))
    assert changes == [CacheChange(routes=True)]
    cache.apply("Ingress", "DELETED", ingress("i", ns="edge"))
    changes.clear()
    cache.apply("Secret", "MODIFIED", secret("same-ns", ns="edge", data="newer", rv="3"))
    assert changes == []

    # A relist of Gateways recounts, without touching what Ingresses name.
    cache.apply("Ingress", "ADDED", ingress("j", tls_secret="ingress-only"))
    cache.replace("Gateway", [gateway("gw2", refs=[{"name": "from-relist"}])])
    changes.clear()
    cache.replace("Secret", [secret("from-relist"), secret("ingress-only"), secret("renamed", ns="edge")])
    assert changes == [CacheChange(routes=True)]
    changes.clear()
    cache.replace("Secret", [secret("renamed", ns="edge", data="changed")])  # the two others deleted: relevant
    assert changes == [CacheChange(routes=True)]
    changes.clear()
    cache.replace("Secret", [secret("renamed", ns="edge", data="again")])  # no longer named by anything
    assert changes == []


def test_gateway_kinds_travel_through_operations_and_perform():
    """A worker's cache, fed by operations() then the observed writes (pickled), holds every new kind."""
    import pickle

    source = ObjectCache()
    source.replace("GatewayClass", [{"apiVersion": GATEWAY_API, "kind": "GatewayClass",
                                     "metadata": meta("pyngress", None), "spec": {"controllerName": "x"}}])
    source.replace("Gateway", [gateway("gw", refs=[{"name": "cert"}])])
    source.replace("Namespace", [namespace("default", labels={"env": "prod"})])
    for kind in KINDS:
        source.mark_synced(kind)
    worker = ObjectCache()
    for op in source.operations():
        worker.perform(pickle.loads(pickle.dumps(op)))
    source.observe(lambda op: worker.perform(pickle.loads(pickle.dumps(op))))
    source.apply("HTTPRoute", "ADDED", http_route("r"))
    source.apply("ReferenceGrant", "ADDED", {"metadata": meta("allow", "backends"), "spec": {}})
    source.apply("HTTPRoute", "MODIFIED", http_route("r", rv="2", status={"parents": []}))
    source.apply("Namespace", "MODIFIED", namespace("default", labels={"env": "dev"}, rv="2"))
    source.apply("Secret", "ADDED", secret("cert"))
    changes: list = []
    worker.subscribe(changes.append)
    worker_snap, source_snap = worker.snapshot(), source.snapshot()
    assert worker.synced
    for name in ("gateway_classes", "gateways", "http_routes", "reference_grants", "namespaces", "secrets"):
        assert dict(getattr(worker_snap, name)) == dict(getattr(source_snap, name)), name
    assert worker.get("HTTPRoute", "default", "r")["status"] == {"parents": []}
    # The worker classifies what it replays the same way: its Gateway names the Secret too.
    source.apply("Secret", "MODIFIED", secret("cert", data="rotated", rv="2"))
    assert changes == [CacheChange(routes=True)]


def _config_map(name: str, ca: str = "pem", rv: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default",
                                                                   "resourceVersion": rv},
            "data": {"ca.crt": ca, "big": "x" * 100}}


def _tls_policy(*config_maps: str, rv: str = "1") -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": {"name": "tls", "namespace": "default", "resourceVersion": rv},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                     "validation": {"hostname": "web.internal", "caCertificateRefs": [
                         {"group": "", "kind": "ConfigMap", "name": name} for name in config_maps]}}}


def test_a_configmap_matters_only_while_a_backend_tls_policy_names_it():
    wanted: list[tuple[str, str]] = []
    cache = ObjectCache()
    cache.hold_named_config_maps(wanted.append)  # cluster mode: unnamed ConfigMaps keep no data
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    cache.apply("ConfigMap", "ADDED", _config_map("ca"))
    cache.replace("ConfigMap", [_config_map("ca"), _config_map("other")])
    assert changes == []
    assert cache.snapshot().config_maps[("default", "ca")]["data"] == {}  # nothing names it: not even ca.crt
    cache.apply("BackendTLSPolicy", "ADDED", _tls_policy("ca"))
    assert changes == [CacheChange(routes=True)]
    assert wanted == [("default", "ca")] and cache.wants_config_map(("default", "ca"))  # read again for its bundle
    changes.clear()
    cache.fetched_config_map(_config_map("ca"))
    assert cache.snapshot().config_maps[("default", "ca")]["data"] == {"ca.crt": "pem"}  # only the CA bundle kept
    assert changes == [CacheChange(routes=True)]
    changes.clear()
    cache.apply("ConfigMap", "MODIFIED", _config_map("other", "new", rv="2"))
    assert changes == []
    cache.apply("ConfigMap", "MODIFIED", _config_map("ca", "new", rv="2"))
    assert changes == [CacheChange(routes=True)]
    changes.clear()
    cache.apply("ConfigMap", "MODIFIED", {**_config_map("ca", "new", rv="3"), "data": {"ca.crt": "new", "big": "y"}})
    assert changes == []  # a change to what is not kept is no change
    cache.apply("BackendTLSPolicy", "DELETED", _tls_policy("ca"))
    assert cache.snapshot().config_maps[("default", "ca")]["data"] == {}  # named no more: the bundle goes
    changes.clear()
    cache.apply("ConfigMap", "MODIFIED", _config_map("ca", "newer", rv="4"))
    assert changes == []
    assert wanted == [("default", "ca")]


@pytest.mark.parametrize("kind, api_version", [("BackendTrafficPolicy", "pyngress.dev/v1alpha1"),
                                               ("BackendTLSPolicy", "gateway.networking.k8s.io/v1")])
def test_policy_status_alone_rebuilds_nothing(kind: str, api_version: str):
    cache = ObjectCache()
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    policy = {"apiVersion": api_version, "kind": kind,
              "metadata": {"name": "p", "namespace": "default", "resourceVersion": "1"},
              "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}]}}
    cache.apply(kind, "ADDED", policy)
    changes.clear()
    moved = {**policy["metadata"], "resourceVersion": "2"}
    cache.apply(kind, "MODIFIED", {**policy, "metadata": moved, "status": {"ancestors": []}})
    assert changes == []


def test_auth_tls_secret_annotation_makes_its_secret_relevant(cache_and_changes):
    """ingress-nginx's auth-tls-secret ("namespace/name" or "name") names a Secret like spec.tls does: its
    changes rebuild, while a Secret nothing names does not."""
    cache, changes = cache_and_changes
    for name, value in (("full", "default/client-ca"), ("short", "short-ca")):
        obj = ingress(name)
        obj["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/auth-tls-secret": value}
        cache.apply("Ingress", "ADDED", obj)
    changes.clear()
    cache.apply("Secret", "ADDED", secret("client-ca"))
    cache.apply("Secret", "ADDED", secret("short-ca"))
    assert changes == [CacheChange(routes=True)] * 2
    changes.clear()
    cache.apply("Secret", "ADDED", secret("unnamed"))
    assert changes == []


def opaque(name: str, *, ns: str = "default", data: str = "eA==", rv: str = "1") -> dict:
    return {"metadata": meta(name, ns, resourceVersion=rv), "type": "Opaque", "data": {"auth": data}}


def auth_ingress(name: str, secret_name: str, *, rv: str = "1") -> dict:
    obj = ingress(name, rv=rv)
    obj["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/auth-secret": secret_name}
    return obj


def test_held_secrets_follow_their_names_and_replay_on_a_worker_cache():
    """Cluster mode (hold_named_secrets): an Opaque Secret's data is held only while an Ingress names it; a
    name appearing asks for the Secret (`fetch`); a worker's cache replaying the operations holds the same."""
    cache = ObjectCache()
    worker = ObjectCache()  # worker processes hold what they are given
    cache.observe(worker.perform)
    wanted: list[tuple[str, str]] = []
    cache.hold_named_secrets(wanted.append)
    cache.replace("Secret", [opaque("htpasswd"), opaque("helm-release", data="QUJD" * 1000), secret("cert")])
    assert set(cache.snapshot().secrets) == {("default", "cert")}  # TLS Secrets are always held
    assert cache.unheld_secrets() == {("default", "htpasswd"), ("default", "helm-release")}

    cache.apply("Ingress", "ADDED", auth_ingress("a", "htpasswd"))
    assert wanted == [("default", "htpasswd")]
    cache.fetched(opaque("htpasswd", rv="2"))
    assert cache.get("Secret", "default", "htpasswd")["data"] == {"auth": "eA=="}
    assert worker.get("Secret", "default", "htpasswd") == cache.get("Secret", "default", "htpasswd")
    cache.fetched(opaque("htpasswd", data="old", rv="1"))  # held now: a late read is ignored
    assert cache.get("Secret", "default", "htpasswd")["data"] == {"auth": "eA=="}

    cache.apply("Ingress", "MODIFIED", ingress("a", rv="2"))  # the name goes: so does the data, on both
    assert cache.get("Secret", "default", "htpasswd") is None and worker.get("Secret", "default", "htpasswd") is None
    assert ("default", "htpasswd") in cache.unheld_secrets()

    cache.apply("Ingress", "MODIFIED", auth_ingress("a", "htpasswd", rv="3"))
    cache.apply("Secret", "DELETED", opaque("htpasswd"))  # deleted before the read came back
    cache.fetched(opaque("htpasswd", rv="4"))
    assert cache.get("Secret", "default", "htpasswd") is None
    assert wanted == [("default", "htpasswd")] * 2


def test_without_hold_named_secrets_every_secret_is_held():
    """File mode: the manifests' Secrets, any type, are all held."""
    cache = ObjectCache()
    cache.replace("Secret", [opaque("htpasswd"), secret("cert")])
    assert set(cache.snapshot().secrets) == {("default", "htpasswd"), ("default", "cert")}


def test_the_first_sync_waits_for_the_secrets_its_ingresses_name():
    """A restart in cluster mode: Secrets listed before the Ingresses naming them; the cache is synced (the
    first build happens) only once those Secrets have been read back, so no auth route answers 503 meanwhile."""
    cache = ObjectCache(kinds=("Ingress", "Secret"))
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    cache.hold_named_secrets(lambda key: None)
    cache.replace("Secret", [opaque("htpasswd"), opaque("gone")])
    cache.mark_synced("Secret")
    cache.replace("Ingress", [auth_ingress("a", "htpasswd"), auth_ingress("b", "gone")])
    cache.mark_synced("Ingress")
    assert not cache.synced
    cache.fetched(opaque("htpasswd", rv="2"))
    assert not cache.synced
    changes.clear()
    cache.fetch_ended(("default", "gone"))  # not found (or given up): nothing to wait for
    assert cache.synced and changes == [CacheChange(routes=True)]
    assert cache.get("Secret", "default", "htpasswd") is not None


def _headers_ingress(config_map: str, *, rv: str = "1") -> dict:
    obj = ingress("web", rv=rv)
    obj["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/custom-headers": config_map}
    return obj


def test_a_configmap_an_ingress_names_is_kept_whole_and_read_again_when_named():
    """custom-headers / auth-proxy-set-headers (ingress-nginx's test/e2e/annotations/customheaders.go): the cache
    keeps the data of the ConfigMaps an Ingress names, drops the rest on arrival (cluster mode), asks for a
    ConfigMap held without its data when an Ingress starts naming it, and drops its data again after."""
    cache = ObjectCache()
    wanted: list[tuple[str, str]] = []
    cache.hold_named_config_maps(wanted.append)
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    cache.replace("ConfigMap", [_config_map("headers"), _config_map("other")])
    assert cache.snapshot().config_maps[("default", "headers")]["data"] == {}
    assert changes == []
    cache.apply("Ingress", "ADDED", _headers_ingress("default/headers"))
    assert wanted == [("default", "headers")]
    assert not cache.wants_config_map(("default", "other"))
    changes.clear()
    cache.fetched_config_map(_config_map("headers", rv="2"))
    assert cache.snapshot().config_maps[("default", "headers")]["data"] == {"ca.crt": "pem", "big": "x" * 100}
    assert changes == [CacheChange(routes=True)]
    changes.clear()
    cache.apply("ConfigMap", "MODIFIED", _config_map("other", "new", rv="2"))
    assert changes == []  # nothing names it
    cache.apply("ConfigMap", "MODIFIED", {**_config_map("headers", rv="3"), "data": {"X-A": "1"}})
    assert changes == [CacheChange(routes=True)]
    # The Ingress names another one (not there yet): the first loses its data; the new one arrives whole.
    cache.apply("Ingress", "MODIFIED", _headers_ingress("late", rv="2"))
    assert cache.snapshot().config_maps[("default", "headers")]["data"] == {}
    changes.clear()
    cache.apply("ConfigMap", "ADDED", {**_config_map("late"), "data": {"X-B": "2"}})
    assert cache.snapshot().config_maps[("default", "late")]["data"] == {"X-B": "2"}
    assert changes == [CacheChange(routes=True)]
    assert wanted == [("default", "headers")]


def test_the_configmap_proxy_set_headers_names_is_kept_whole():
    """configmap.md "proxy-set-headers" (docs/examples/customization/custom-headers: the controller ConfigMap names
    "ingress-nginx/custom-headers"): the ConfigMap it names keeps its data in cluster mode, in any namespace, is read
    again when named after it arrived stripped, and loses its data when named no more."""
    cache = ObjectCache(controller_config_map=("ingress-nginx", "controller"))
    wanted: list[tuple[str, str]] = []
    cache.hold_named_config_maps(wanted.append)
    changes: list[CacheChange] = []
    cache.subscribe(changes.append)
    headers = {**_config_map("custom-headers"), "metadata": {"name": "custom-headers", "namespace": "ingress-nginx",
                                                             "resourceVersion": "1"}}
    cache.replace("ConfigMap", [headers])
    assert cache.snapshot().config_maps[("ingress-nginx", "custom-headers")]["data"] == {}

    def controller(value: str, rv: str) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "controller", "namespace": "ingress-nginx", "resourceVersion": rv},
                "data": {"proxy-set-headers": value}}

    cache.replace("ControllerConfigMap", [controller("ingress-nginx/custom-headers", "1")])
    assert wanted == [("ingress-nginx", "custom-headers")] and cache.wants_config_map(wanted[0])
    changes.clear()
    cache.fetched_config_map(headers)
    assert cache.snapshot().config_maps[("ingress-nginx", "custom-headers")]["data"] == headers["data"]
    assert changes == [CacheChange(routes=True)]
    cache.apply("ControllerConfigMap", "MODIFIED", controller("other", "2"))  # a bare name: its own namespace
    assert cache.snapshot().config_maps[("ingress-nginx", "custom-headers")]["data"] == {}
    assert cache.wants_config_map(("ingress-nginx", "other"))


def test_a_configmap_of_another_namespace_is_not_named():
    cache = ObjectCache()
    wanted: list[tuple[str, str]] = []
    cache.hold_named_config_maps(wanted.append)
    cache.replace("ConfigMap", [{**_config_map("headers"), "metadata": {"name": "headers", "namespace": "other"}}])
    cache.apply("Ingress", "ADDED", _headers_ingress("other/headers"))
    assert wanted == []


def test_file_mode_keeps_every_configmap_whole():
    cache = ObjectCache()
    cache.replace("ConfigMap", [_config_map("headers")])
    assert cache.snapshot().config_maps[("default", "headers")]["data"] == {"ca.crt": "pem", "big": "x" * 100}
