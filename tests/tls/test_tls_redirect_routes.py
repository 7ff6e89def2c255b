"""Which routes redirect plain HTTP to HTTPS: decided at build time from spec.tls and annotations."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.objects import Snapshot
from proxy.routing.build import build
from proxy.routing.ingress.annotations import parse_annotations
from proxy.routing.ingress.tls import TlsHosts, tls_host_names
from proxy.settings import Settings

SETTINGS = Settings()


def ingress(name: str, host: str | None, *, tls: list[dict] | None = None,
            annotations: dict[str, str] | None = None, ingress_class: str = "pyngress") -> dict[str, Any]:
    rule: dict[str, Any] = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "web", "port": {"number": 80}}}}]}}
    if host:
        rule["host"] = host
    spec: dict[str, Any] = {"ingressClassName": ingress_class, "rules": [rule]}
    if tls is not None:
        spec["tls"] = tls
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def redirects(*ingresses: dict[str, Any]) -> dict[str, bool]:
    config = build(Snapshot(ingresses={("default", i["metadata"]["name"]): i for i in ingresses}), SETTINGS)
    return {route.host: route.ssl_redirect for route in config.table.routes()}


def test_hosts_with_tls_redirect_and_others_do_not():
    found = redirects(
        ingress("a", "a.test", tls=[{"hosts": ["a.test"], "secretName": "a"}]),
        ingress("b", "b.test", tls=[{"secretName": "b"}]),  # no hosts: the rule hosts
        ingress("w", "x.wild.test"),  # covered by another Ingress's wildcard TLS entry
        ingress("wc", "*.wild.test", tls=[{"hosts": ["*.wild.test"], "secretName": "w"}]),
        ingress("deep", "a.b.wild.test"),  # a wildcard covers one label only
        ingress("plain", "plain.test"),
        ingress("any", None),
    )
    assert found == {"a.test": True, "b.test": True, "x.wild.test": True, "*.wild.test": True,
                     "a.b.wild.test": False, "plain.test": False, "": False}


def test_tls_of_ingresses_we_do_not_serve_is_ignored():
    found = redirects(ingress("a", "a.test"),
                      ingress("other", "a.test", tls=[{"hosts": ["a.test"]}], ingress_class="nginx"))
    assert found == {"a.test": False}


@pytest.mark.parametrize("name", ["nginx.ingress.kubernetes.io/ssl-redirect", "pyngress.dev/ssl-redirect"])
def test_ssl_redirect_false_turns_it_off_for_that_ingress_only(name):
    found = redirects(
        ingress("a", "a.test", tls=[{"hosts": ["a.test", "b.test"]}], annotations={name: "false"}),
        ingress("b", "b.test"),
    )
    assert found == {"a.test": False, "b.test": True}


@pytest.mark.parametrize("name", ["nginx.ingress.kubernetes.io/force-ssl-redirect",
                                  "pyngress.dev/force-ssl-redirect"])
def test_force_ssl_redirect_redirects_hosts_without_tls(name):
    assert redirects(ingress("a", "a.test", annotations={name: "true"}), ingress("b", "b.test")) == {
        "a.test": True, "b.test": False}


def test_redirect_flag_is_part_of_the_checksum():
    with_tls = ingress("a", "a.test", tls=[{"hosts": ["a.test"]}])
    opted_out = ingress("a", "a.test", tls=[{"hosts": ["a.test"]}],
                        annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"})
    first = build(Snapshot(ingresses={("default", "a"): with_tls}), SETTINGS)
    second = build(Snapshot(ingresses={("default", "a"): opted_out}), SETTINGS)
    assert first.checksum != second.checksum


def ssl_redirect(annotations: dict[str, Any]) -> bool:
    return parse_annotations(annotations)[0].ssl_redirect


def force_ssl_redirect(annotations: dict[str, Any]) -> bool:
    return parse_annotations(annotations)[0].force_ssl_redirect


def test_annotation_parsers_and_unreadable_values():
    assert ssl_redirect({}) is True and force_ssl_redirect({}) is False
    assert ssl_redirect({"pyngress.dev/ssl-redirect": " False "}) is False
    assert ssl_redirect({"pyngress.dev/ssl-redirect": "maybe"}) is True
    assert force_ssl_redirect({"pyngress.dev/force-ssl-redirect": 1}) is False
    assert tls_host_names({"spec": {"tls": "bad"}}) == set()
    assert tls_host_names({"spec": {"tls": [None, {"hosts": ["A.Test."]}]}}) == {"a.test"}
    hosts = TlsHosts(["*.example.test", "one.test"])
    assert hosts.covers("x.example.test") and hosts.covers("*.example.test") and hosts.covers("one.test")
    assert not hosts.covers("example.test") and not hosts.covers("") and not hosts.covers("*.one.test")
