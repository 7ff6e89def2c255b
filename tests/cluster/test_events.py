"""Warning Events from builder warnings: on the Ingress concerned, deduplicated, rate-limited, never fatal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from kubernetes_asyncio.client import ApiClient

from kubeapi import KubeApiServer
from proxy.kube.cache import ObjectCache
from proxy.kube.events import REASON, EventRecorder
from proxy.kube.leader import LeaderElector
from proxy.objects import Warning
from proxy.settings import Settings

from .objects import endpoint_slice, ingress, ingress_class, service, tls_secret
from .pipeline import start_pipeline
from .test_watch import eventually

SETTINGS = Settings(pod_name="pyngress-abc", pod_namespace="pyngress")

Make = Callable[..., EventRecorder]


@pytest.fixture
async def recorder(api_client: ApiClient) -> AsyncIterator[Make]:
    tasks: list[asyncio.Task] = []

    def make(**options: object) -> EventRecorder:
        made = EventRecorder(api_client, SETTINGS, **options)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(made.run()))
        return made

    yield make
    for task in tasks:
        assert not task.done(), "the recorder died"
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def events(kube_api: KubeApiServer, namespace: str = "default") -> list[dict]:
    return kube_api.objects("Event", namespace)


async def test_warning_becomes_an_event_on_the_ingress(kube_api: KubeApiServer, recorder: Make) -> None:
    stored = kube_api.create(ingress("web"))
    cache = ObjectCache()
    cache.replace("Ingress", [stored])
    rec = recorder(cache=cache)
    assert rec.record([Warning("Ingress", "default", "web", "path /x: bad pathType; rule skipped")]) == 1
    await eventually(lambda: len(events(kube_api)) == 1, "an Event")
    (event,) = events(kube_api)
    assert event["type"] == "Warning" and event["reason"] == REASON and event["count"] == 1
    assert event["message"] == "path /x: bad pathType; rule skipped"
    assert event["involvedObject"] == {"kind": "Ingress", "namespace": "default", "name": "web",
                                       "apiVersion": "networking.k8s.io/v1", "uid": stored["metadata"]["uid"]}
    assert event["source"] == {"component": "pyngress", "host": "pyngress-abc"}
    assert event["reportingInstance"] == "pyngress-abc"
    assert event["metadata"]["name"].startswith("web.")


async def test_backend_warnings_go_on_the_ingresses_that_use_the_object(kube_api: KubeApiServer,
                                                                       recorder: Make) -> None:
    cache = ObjectCache()
    cache.replace("Ingress", [ingress("a", service="web"), ingress("b", service="web", host="b.test"),
                              ingress("c", service="other", host="c.test", tls_secret="cert")])
    cache.replace("EndpointSlice", [endpoint_slice("web", addresses=["10.0.0.1"])])
    rec = recorder(cache=cache)
    rec.record([Warning("Service", "default", "web", "not found"),
                Warning("EndpointSlice", "default", "web-abcde", "bad port"),
                Warning("Secret", "default", "cert", "no tls.key"),
                Warning("Service", "default", "unused", "not found"),
                Warning("IngressClass", "", "broken", "bad parameters")])
    await eventually(lambda: len(events(kube_api)) == 7, "seven Events")
    found = {(e["involvedObject"]["kind"], e["involvedObject"].get("namespace"), e["involvedObject"]["name"],
              e["message"]) for e in events(kube_api)}
    assert found == {
        ("Ingress", "default", "a", "Service default/web: not found"),
        ("Ingress", "default", "b", "Service default/web: not found"),
        ("Ingress", "default", "a", "EndpointSlice default/web-abcde: bad port"),
        ("Ingress", "default", "b", "EndpointSlice default/web-abcde: bad port"),
        ("Ingress", "default", "c", "Secret default/cert: no tls.key"),
        ("Service", "default", "unused", "not found"),  # nobody uses it: the Event goes on the object
        ("IngressClass", None, "broken", "bad parameters"),  # cluster-scoped: Event in "default"
    }


async def test_repeats_are_deduplicated_then_counted(kube_api: KubeApiServer, recorder: Make) -> None:
    warning = Warning("Ingress", "default", "web", "conflicting path")
    rec = recorder(repeat_after=3600)
    assert rec.record([warning]) == 1
    await eventually(lambda: rec.posted_total == 1)
    for _ in range(5):  # every build repeats its warnings
        assert rec.record([warning]) == 0
    assert len(events(kube_api)) == 1
    rec.repeat_after = 0  # as if ten minutes had passed
    assert rec.record([warning]) == 1
    await eventually(lambda: rec.posted_total == 2)
    (event,) = events(kube_api)
    assert event["count"] == 2
    assert [r.verb for r in kube_api.requests] == ["create", "patch"]


async def test_an_expired_event_is_created_again(kube_api: KubeApiServer, recorder: Make) -> None:
    warning = Warning("Ingress", "default", "web", "conflicting path")
    rec = recorder(repeat_after=0)
    rec.record([warning])
    await eventually(lambda: len(events(kube_api)) == 1)
    kube_api.delete("Event", "default", events(kube_api)[0]["metadata"]["name"])  # events expire after an hour
    rec.record([warning])
    await eventually(lambda: len(events(kube_api)) == 1 and rec.posted_total == 2)
    assert events(kube_api)[0]["count"] == 1


async def test_rate_limit_and_bounded_queue(kube_api: KubeApiServer, recorder: Make) -> None:
    rec = recorder(burst=3, rate=0, queue_size=5)  # no refill: exactly the burst gets out
    queued = rec.record([Warning("Ingress", "default", f"ing-{i}", "broken") for i in range(10)])
    assert queued == 5 and rec.dropped_total == 5
    await eventually(lambda: len(events(kube_api)) == 3, "the burst")
    await eventually(lambda: rec.pending == 1)  # one taken off the queue, waiting for a token
    assert len(events(kube_api)) == 3 and rec.posted_total == 3


async def test_api_errors_are_never_fatal(kube_api: KubeApiServer, recorder: Make) -> None:
    kube_api.fail_next(2, 500, when=lambda r: r.resource == "events")
    rec = recorder()
    rec.record([Warning("Ingress", "default", "a", "x"), Warning("Ingress", "default", "b", "y")])
    await eventually(lambda: rec.errors_total == 2, "two failed posts")
    assert events(kube_api) == []
    # Not reported means not remembered: the next build's warnings are posted.
    rec.record([Warning("Ingress", "default", "a", "x")])
    await eventually(lambda: len(events(kube_api)) == 1)
    await kube_api.stop()
    rec.record([Warning("Ingress", "default", "c", "z")])
    await eventually(lambda: rec.errors_total == 3, "a failed post while the API server is down")


async def test_only_the_leader_records(kube_api: KubeApiServer, api_client: ApiClient, recorder: Make) -> None:
    elector = LeaderElector(api_client, SETTINGS, identity="pod-b", lease_duration=30, renew_deadline=20,
                            retry_period=0.05)
    rec = recorder(elector=elector)
    assert rec.record([Warning("Ingress", "default", "web", "x")]) == 0  # not (yet) the leader
    campaign = asyncio.create_task(elector.run())
    try:
        async with asyncio.timeout(10):
            await elector.wait_leading()
        assert rec.record([Warning("Ingress", "default", "web", "x")]) == 1
        await eventually(lambda: len(events(kube_api)) == 1)
    finally:
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)


async def test_builder_warnings_reach_the_ingress_end_to_end(kube_api: KubeApiServer, api_client: ApiClient,
                                                             recorder: Make) -> None:
    kube_api.apply(ingress_class())
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))
    kube_api.create(ingress("web", host="web.test"))
    kube_api.create(ingress("broken", host="broken.test", service="missing"))
    settings = Settings(pod_name="pyngress-abc")
    pipeline = await start_pipeline(api_client, settings)
    try:
        recorder(cache=pipeline.cache, warnings=lambda: pipeline.controller.warnings, settle=0.05)
        await eventually(lambda: any(e["involvedObject"]["name"] == "broken" for e in events(kube_api)),
                         "an Event on the Ingress using the missing Service")
        (event,) = [e for e in events(kube_api) if e["involvedObject"]["name"] == "broken"]
        assert event["involvedObject"]["kind"] == "Ingress"
        assert event["message"].startswith("Service missing: not found")
        assert not [e for e in events(kube_api) if e["involvedObject"]["name"] == "web"]
        kube_api.create(tls_secret("unused"))  # a change that does not alter the warnings
        kube_api.create(ingress("also-broken", host="b2.test", service="gone"))
        await eventually(lambda: any(e["involvedObject"]["name"] == "also-broken" for e in events(kube_api)))
        assert len([e for e in events(kube_api) if e["involvedObject"]["name"] == "broken"]) == 1
    finally:
        await pipeline.close()


async def test_refused_and_invalid_annotations_become_events_on_their_ingress(
        kube_api: KubeApiServer, api_client: ApiClient, recorder: Make) -> None:
    """ingress-nginx annotations (issue 12): a refused snippet and a bad value each become an Event naming
    the annotation, and the Ingress is still served."""
    kube_api.apply(ingress_class())
    kube_api.create(service("web"))
    kube_api.create(endpoint_slice("web", addresses=["127.0.0.2"]))
    annotated = ingress("snippets", host="snippets.test")
    annotated["metadata"]["annotations"] = {
        "nginx.ingress.kubernetes.io/server-snippet": "location /x { return 200; }",
        "nginx.ingress.kubernetes.io/permanent-redirect": "https://example.com",
        "nginx.ingress.kubernetes.io/permanent-redirect-code": "moved",
    }
    kube_api.create(annotated)
    pipeline = await start_pipeline(api_client, Settings(pod_name="pyngress-abc"))
    try:
        recorder(cache=pipeline.cache, warnings=lambda: pipeline.controller.warnings, settle=0.05)
        await eventually(lambda: len([e for e in events(kube_api) if e["involvedObject"]["name"] == "snippets"]) == 2,
                         "two Events on the annotated Ingress")
        messages = sorted(e["message"] for e in events(kube_api) if e["involvedObject"]["name"] == "snippets")
        assert messages[0].startswith("annotation nginx.ingress.kubernetes.io/permanent-redirect-code: 'moved' is "
                                      "not an integer; the redirect is disabled")
        assert messages[1].startswith("annotation nginx.ingress.kubernetes.io/server-snippet is refused")
        runtime = pipeline.holder.current
        assert runtime is not None
        route = runtime.config.table.match("snippets.test", "/")  # still served, without a redirect
        assert route is not None and route.cluster == "default/web:80" and route.filters is None
    finally:
        await pipeline.close()
