"""ingress-nginx's mirror annotations at the builder level: `mirror-target`, `mirror-request-body`, `mirror-host`.

Facts from test/e2e/annotations/mirror.go ("should set mirror-target to http://localhost/mirror", "... to
https://test.env.com/$request_uri", "should disable mirror-request-body") and the "Mirror" section of
docs/user-guide/nginx-configuration/annotations.md (Host defaults to the target's host; mirror-host overrides
it; the mirror applies to every path of the Ingress). The data plane: tests/server/test_nginx_mirror.py.
"""

from __future__ import annotations

from proxy.routing.external_auth import compile_template
from proxy.routing.filters import Mirror, MirrorCopy

from .objects import ingress, path, route_for, rule
from .test_nginx_traffic import HOST, annotated, built, messages, world


def mirrors(**annotations: str) -> tuple[tuple[Mirror, ...], list[str]]:
    config, route = built(annotated("m", **annotations))
    return (route.filters.mirrors if route.filters is not None else ()), messages(config)


def test_a_target_with_request_uri_copies_to_the_service_with_the_uri_rendered():
    """mirror.go "should set mirror-target to https://test.env.com/$request_uri" (here http: https is not dialled)."""
    found, problems = mirrors(mirror_target="http://other.default.svc.cluster.local:80/$request_uri")
    template, _ = compile_template("/$request_uri")
    assert found == (Mirror("default/other:80", copy=MirrorCopy(host=b"other.default.svc.cluster.local",
                                                                  path=template)),)
    assert problems == []


def test_a_plain_path_target_and_mirror_host_and_no_body():
    """mirror.go "should disable mirror-request-body"; annotations.md: mirror-host overrides the Host."""
    found, problems = mirrors(mirror_target="http://other/mirror", mirror_request_body="off",
                              mirror_host="test.env.com")
    assert found == (Mirror("default/other:80", copy=MirrorCopy(host=b"test.env.com", static=b"/mirror",
                                                                  body=False)),)
    assert problems == []


def test_the_mirror_cluster_is_resolved_like_a_backend():
    config, route = built(annotated("m", mirror_target="http://other:80"))
    assert route.filters is not None and route.filters.mirrors[0].cluster in config.clusters


def test_every_path_of_the_ingress_is_mirrored():
    """annotations.md "The mirror directive will be applied to all paths within the ingress resource"."""
    obj = ingress("m", rule(HOST, path("/", "echo"), path("/api", "echo")))
    obj["metadata"]["annotations"] = {"nginx.ingress.kubernetes.io/mirror-target": "http://other$request_uri"}
    from proxy.routing.build import build
    from proxy.settings import Settings
    config = build(world(obj), Settings())
    for request_path in ("/", "/api"):
        route = route_for(config, HOST, request_path)
        assert route is not None and route.filters is not None and len(route.filters.mirrors) == 1


def test_targets_that_cannot_be_dialled_warn_and_mirror_nothing():
    """An outside host or IP (docs' https://1.2.3.4$request_uri), https, a bad port: a warning, no mirror."""
    for target, words in (("http://1.2.3.4$request_uri", "not a Service's cluster DNS name"),
                          ("http://test.env.com/$request_uri", "not a Service's cluster DNS name"),
                          ("https://other.default/$request_uri", "https mirror targets"),
                          ("http://other:99999/", "not a port number"),
                          ("http://other/$nonsense", "$nonsense is not supported")):
        found, problems = mirrors(mirror_target=target)
        assert found == (), target
        assert any("mirror-target" in p and words in p and "no request is mirrored" in p for p in problems), problems


def test_an_invalid_target_and_companions_without_a_target_warn():
    found, problems = mirrors(mirror_target="not a url")
    assert found == () and any("mirror-target" in p for p in problems)
    found, problems = mirrors(mirror_host="x.example")
    assert found == () and any("mirror-host have no effect without mirror-target" in p for p in problems)


def test_an_ingress_without_mirror_annotations_has_no_mirror():
    found, problems = mirrors()
    assert found == () and problems == []
