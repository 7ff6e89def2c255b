"""BackendTLSPolicy status as build output: which ancestors get an entry (the Gateways routing to the target, the
Service itself for an Ingress-only use, nothing for a Service none of our routes uses) and the conditions the spec
defines for each case. Every case is built twice, by `build()` and by an incremental `Builder`, which must agree.
(The upstream conformance cases are in tests/routing/gateway/suite_backendtls.py.)"""

from __future__ import annotations

from typing import Any

from proxy.routing.build import build
from proxy.routing.incremental import Builder
from proxy.routing.model import Config
from proxy.routing.policy.status import AncestorStatus
from proxy.settings import Settings

from ..gateway.objects import backend as gw_backend
from ..gateway.objects import gateway, gateway_class, http_route, listener, parent, snapshot
from ..gateway.objects import rule as gw_rule
from ..objects import endpoint, endpoint_slice, ingress, path, rule, service, service_port
from .objects import config_map, target, tls_policy

SETTINGS = Settings()
NS = "default"
CONTROLLER = SETTINGS.gateway_controller_name


def built(*objects: Any, settings: Settings = SETTINGS) -> Config:
    snap = snapshot(*objects)
    fresh = build(snap, settings)
    got = Builder().build(snap, settings)
    assert got.tls_policy_status == fresh.tls_policy_status
    assert got.checksum == fresh.checksum
    return fresh


def web(*ports: Any) -> list[Any]:
    return [service("web", *ports), endpoint_slice("web", [endpoint("10.0.1.1")])]


def via_gateway(*backends: Any, gateway_name: str = "edge", class_name: str = "pyngress") -> list[Any]:
    return [gateway_class(class_name) if class_name == "pyngress" else gateway_class(class_name, controller="else"),
            gateway(gateway_name, listener("http", 80, namespaces="All"), namespace=NS, class_name=class_name),
            http_route(f"to-{gateway_name}", gw_rule(backends=list(backends or (gw_backend("web", 80),))),
                       parents=[parent(gateway_name)], namespace=NS, hostnames=["gw.test"])]


def ancestors(config: Config, policy: str = "tls") -> tuple[AncestorStatus, ...]:
    assert config.tls_policy_status is not None
    return config.tls_policy_status.policies[(NS, policy)].ancestors


def conditions(entry: AncestorStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in entry.conditions}


def test_no_status_without_backend_tls_policies():
    assert built(*web(), ingress("shop", rule("shop.test", path("/", "web")))).tls_policy_status is None


def test_the_gateways_routing_to_the_service_are_the_ancestors():
    config = built(*web(), config_map("ca"), tls_policy("tls", "web", ca=["ca"]), *via_gateway(),
                   ingress("shop", rule("shop.test", path("/", "web"))))
    [entry] = ancestors(config)  # an Ingress use beside a Gateway's adds no entry: the Gateway's says it all
    assert entry.ref.to_json() == {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": NS,
                                   "name": "edge"}
    assert entry.controller_name == CONTROLLER
    assert conditions(entry) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
    assert {c.observed_generation for c in entry.conditions} == {1}


def test_an_ingress_only_use_names_the_service():
    config = built(*web(), tls_policy("tls", "web", ca=["missing"]),
                   ingress("shop", rule("shop.test", path("/", "web"))))
    [entry] = ancestors(config)
    assert entry.ref.to_json() == {"group": "", "kind": "Service", "namespace": NS, "name": "web"}
    assert conditions(entry) == {"Accepted": ("False", "NoValidCACertificate"),
                                 "ResolvedRefs": ("False", "InvalidCACertificateRef")}
    assert "ConfigMap missing not found" in entry.condition("ResolvedRefs").message


def test_a_service_none_of_our_routes_uses_gets_no_entry():
    config = built(*web(), config_map("ca"), tls_policy("tls", "web", ca=["ca"]),
                   *via_gateway(class_name="theirs"))  # another controller's Gateway routes to it
    assert ancestors(config) == ()


def test_a_section_names_one_port_of_the_service():
    ports = (service_port(80, name="http"), service_port(8443, name="https"))
    policy = tls_policy("tls", "web", ca=["ca"])
    policy["spec"]["targetRefs"] = [target("Service", "web", "https")]
    on_http = built(*web(*ports), config_map("ca"), policy, *via_gateway(gw_backend("web", 80)))
    assert ancestors(on_http) == ()  # the route uses the other port
    on_https = built(*web(*ports), config_map("ca"), policy, *via_gateway(gw_backend("web", 8443)))
    [entry] = ancestors(on_https)
    assert entry.ref.name == "edge" and conditions(entry)["Accepted"] == ("True", "Accepted")
    ingress_only = built(*web(*ports), config_map("ca"), policy,
                         ingress("shop", rule("shop.test", path("/", "web", "https"))))
    [entry] = ancestors(ingress_only)
    assert entry.ref.to_json() == {"group": "", "kind": "Service", "namespace": NS, "name": "web",
                                   "sectionName": "https"}


def test_a_missing_service_or_port_is_target_not_found():
    config = built(config_map("ca"), tls_policy("tls", "web", ca=["ca"]), *via_gateway())
    [entry] = ancestors(config)  # the route names the missing Service: its Gateway is still the ancestor
    assert conditions(entry)["Accepted"] == ("False", "TargetNotFound")
    policy = tls_policy("tls", "web", ca=["ca"])
    policy["spec"]["targetRefs"] = [target("Service", "web", "nope")]
    [entry] = ancestors(built(*web(), config_map("ca"), policy, *via_gateway()))
    assert entry.ref.name == "edge"
    assert conditions(entry)["Accepted"] == ("False", "TargetNotFound")
    assert "has no port named 'nope'" in entry.condition("Accepted").message


def test_an_unreadable_policy_is_invalid():
    policy = tls_policy("tls", "web", ca=["ca"], system=True)  # both: the CRD's CEL refuses it
    [entry] = ancestors(built(*web(), config_map("ca"), policy, *via_gateway()))
    assert conditions(entry) == {"Accepted": ("False", "Invalid")}
    assert "cannot both be set" in entry.condition("Accepted").message


def test_one_valid_ca_among_invalid_ones_is_accepted_with_unresolved_refs():
    policy = tls_policy("tls", "web", ca=["ca", "missing"])
    policy["spec"]["validation"]["caCertificateRefs"].append({"group": "", "kind": "Secret", "name": "s"})
    [entry] = ancestors(built(*web(), config_map("ca"), policy, *via_gateway()))
    assert conditions(entry) == {"Accepted": ("True", "Accepted"),
                                 "ResolvedRefs": ("False", "InvalidCACertificateRef")}
    message = entry.condition("ResolvedRefs").message
    assert "ConfigMap missing not found" in message and "core/Secret is not a ConfigMap" in message


def test_the_system_store_resolves():
    [entry] = ancestors(built(*web(), tls_policy("tls", "web", system=True), *via_gateway()))
    assert conditions(entry) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}


def test_the_newer_of_two_policies_on_one_target_is_conflicted_at_every_gateway():
    newer = tls_policy("a-newer", "web", ca=["ca"], created="2024-01-01T00:00:00Z")
    older = tls_policy("b-older", "web", ca=["ca"], created="2023-01-01T00:00:00Z")  # age first, then the name
    config = built(*web(), config_map("ca"), newer, older, *via_gateway(), *via_gateway(gateway_name="second")[1:])
    assert [conditions(e)["Accepted"] for e in ancestors(config, "b-older")] == [("True", "Accepted")] * 2
    assert [conditions(e)["Accepted"] for e in ancestors(config, "a-newer")] == [("False", "Conflicted")] * 2
    assert [e.ref.name for e in ancestors(config, "a-newer")] == ["edge", "second"]
    assert "b-older (older) already targets Service default/web" in ancestors(config, "a-newer")[0].condition(
        "Accepted").message


def test_a_configmap_change_alone_changes_the_status_and_the_checksum():
    builder = Builder()
    objects = [*web(), tls_policy("tls", "web", ca=["ca"]), *via_gateway()]
    missing = builder.build(snapshot(*objects), SETTINGS)
    present = builder.build(snapshot(*objects, config_map("ca")), SETTINGS)
    assert conditions(ancestors(missing)[0])["Accepted"] == ("False", "NoValidCACertificate")
    assert conditions(ancestors(present)[0])["Accepted"] == ("True", "Accepted")
    assert present.checksum != missing.checksum
    assert builder.build(snapshot(*objects, config_map("ca")), SETTINGS).checksum == present.checksum
