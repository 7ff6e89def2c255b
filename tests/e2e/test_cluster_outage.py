"""API server trouble seen from the real process: an outage keeps the last good table serving
(/readyz stays 200, the metrics say which watches fail, one log line each way), changes made
meanwhile are followed after recovery, and a 410 after lost history relists so objects deleted
while away disappear."""

from __future__ import annotations

from e2e_harness import INGRESS_CLASS, eventually, ingress, scrape, service

HOST = "outage.example.test"
KINDS = ("Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret", "ConfigMap")


def with_path(ing: dict, path: str, service_name: str) -> dict:
    ing["spec"]["rules"][0]["http"]["paths"].append(
        {"path": path, "pathType": "Prefix", "backend": {"service": {"name": service_name, "port": {"number": 80}}}})
    return ing


async def test_outage_keeps_serving_and_recovery_follows_changes(kube_api, cluster, echo_pods) -> None:
    api = kube_api
    web = await echo_pods.start("web-1", "127.0.0.41")
    extra = await echo_pods.start("extra-1", "127.0.0.42")
    api.create(INGRESS_CLASS)
    for obj in service("web", pods=[web]) + service("extra", pods=[extra]):
        api.create(obj)
    api.create(ingress("web", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    proc = await cluster.start()
    assert await _answers(proc, "/", "web-1")
    for kind in KINDS:
        assert await scrape(proc, "pyngress_watch_failing", kind=kind) == 0
        assert await scrape(proc, "pyngress_watch_synced", kind=kind) == 1

    await api.stop()

    async def failing_with_retries() -> bool:
        return (await scrape(proc, "pyngress_watch_failing", kind="Ingress") == 1
                and (await scrape(proc, "pyngress_watch_errors_total", kind="Ingress") or 0) >= 2)

    await eventually(failing_with_retries)
    assert await proc.admin_get("/readyz") == (200, "ok")
    status, body = await proc.request("/", host=HOST)
    assert status == 200 and body["pod"] == "web-1"  # the last good table keeps serving
    assert proc.log().count("failing:") == 1, "one line when the watch starts failing, not one per retry"

    # Changed while the API server is down: seen once it is back.
    api.apply(with_path(api.get("Ingress", "default", "web"), "/extra", "extra"))
    await api.start()
    await eventually(lambda: _answers(proc, "/extra", "extra-1"))
    for kind in KINDS:
        await eventually(lambda kind=kind: _equals(scrape(proc, "pyngress_watch_failing", kind=kind), 0))
    log = proc.log()
    assert log.count("failing:") == 1 and log.count("watch recovered after") == 1
    assert await scrape(proc, "pyngress_watch_relists_total", kind="Ingress") == 0  # resumed, no relist needed


async def test_expired_history_relists_and_drops_objects_deleted_while_away(kube_api, cluster, echo_pods) -> None:
    api = kube_api
    web = await echo_pods.start("web-1", "127.0.0.43")
    old = await echo_pods.start("old-1", "127.0.0.44")
    api.create(INGRESS_CLASS)
    for obj in service("web", pods=[web]) + service("old", pods=[old]):
        api.create(obj)
    api.create(ingress("web", host=HOST, paths=[("/", "Prefix", "web", 80)]))
    api.create(ingress("old", host="old.example.test", paths=[("/", "Prefix", "old", 80)]))
    proc = await cluster.start()
    assert await _answers(proc, "/", "old-1", host="old.example.test")
    assert await scrape(proc, "pyngress_watch_relists_total", kind="Ingress") == 0

    # Every watch is cut; before any can resume, objects go away and history is compacted past
    # them (as after an API server restart): the resumed watches get 410 and must relist.
    assert api.drop_watches() == len(KINDS)
    api.delete("Ingress", "default", "old")
    api.delete("Service", "default", "old")
    api.delete("EndpointSlice", "default", "old-slice")
    api.compact()

    await eventually(lambda: _status(proc, "/", 404, host="old.example.test"))
    for kind in KINDS:
        await eventually(lambda kind=kind: _equals(scrape(proc, "pyngress_watch_relists_total", kind=kind), 1))
    assert await _answers(proc, "/", "web-1", host=HOST)
    routes = (await proc.admin_get("/debug/routes"))[1]
    assert "old.example.test" not in routes["hosts"]
    assert not [r for r in routes["anyHost"] + routes["hosts"][HOST] if r["cluster"].startswith("default/old:")]

    # After the relist the watches follow changes again.
    api.create(ingress("new", host="new.example.test", paths=[("/", "Prefix", "web", 80)]))
    await eventually(lambda: _answers(proc, "/", "web-1", host="new.example.test"))


async def _answers(proc, path: str, pod: str, *, host: str = HOST) -> bool:
    status, body = await proc.request(path, host=host)
    return status == 200 and body["pod"] == pod


async def _status(proc, path: str, expected: int, *, host: str = HOST) -> bool:
    return (await proc.request(path, host=host))[0] == expected


async def _equals(value, expected: float) -> bool:
    return await value == expected
