"""ingress-nginx's `proxy-http-version` at the builder level (test/e2e/annotations/proxy.go "should change the
default proxy HTTP version"; the validator accepts "1.0" and "1.1").

Data plane: tests/server/test_nginx_proxy_version.py."""

from __future__ import annotations

from .test_nginx_traffic import annotated, built, messages


def test_1_0_marks_every_route_of_the_ingress():
    _, route = built(annotated("v", proxy_http_version="1.0"))
    assert route.policy is not None and route.policy.http10 and not route.plain


def test_1_0_is_kept_beside_the_traffic_annotations():
    _, route = built(annotated("v", proxy_http_version="1.0", proxy_next_upstream_tries="2"))
    assert route.policy is not None and route.policy.http10 and route.policy.retry is not None


def test_1_1_and_no_annotation_leave_the_route_plain():
    for given in ({"proxy_http_version": "1.1"}, {}):
        config, route = built(annotated("v", **given))
        assert route.plain and messages(config) == []


def test_another_version_warns_and_keeps_1_1():
    config, route = built(annotated("v", proxy_http_version="2.0"))
    assert route.plain
    assert any("proxy-http-version" in message and "'2.0'" in message for message in messages(config))
