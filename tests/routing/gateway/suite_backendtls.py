"""The upstream conformance suite's BackendTLSPolicy tests over HTTP/1.1 (conformance/tests/backendtlspolicy*.go,
without the TLSRoute one, and the GRPCRoute one, which is in suite_grpcroute.py) as data (scenario.py): the
policies' status.ancestors conditions for the Gateway, and requests whose backend is reached over TLS.

The backend is the base manifests' `tls-backend` pod (HTTPS on 8443, its certificate signed by the CA in the
ConfigMap `tls-checks-ca-certificate`, for abc.example.com, spiffe://abc.example.com/test-identity and
other.example.com; `mismatch-ca-certificate` signed nothing). Every test Service selects its pods, so each gets
an EndpointSlice listing them, as the EndpointSlice controller would write. The routing level checks what the
upstream is told (`backend_tls`); end to end, the handshake decides: 200 from the pod (and the SNI it saw), or a
5xx when verification must fail.
"""

from __future__ import annotations

from typing import Any

from .objects import INFRA, _metadata, backend, ca_config_map, ca_pem, endpoint_slice, http_route, match, parent
from .objects import rule as route_rule
from .scenario import ConformanceTest, Step
from .status_checks import PolicyCondition, accepted, policy_accepted

Obj = dict[str, Any]
TESTS: list[ConformanceTest] = []
CA = "tls-checks-ca-certificate"
MISMATCH_CA = "mismatch-ca-certificate"
POD = "tls-backend"
# What upstream accepts from a request that must not succeed (MakeRequestAndExpectFailure: anything but 200; the
# invalid-reference tests: 500, 502 or 503); the proxy answers a failed handshake with 502.
FAILS = (500, 502, 503)


def _test(name: str, *steps: Step) -> None:
    TESTS.append(ConformanceTest(name, steps))


def tls_service(name: str, *ports: tuple[str, int], app_protocol: str | None = None) -> list[Obj]:
    """A Service selecting the tls-backend pods (ports: (name, port), all to the pod's 8443) and its EndpointSlice."""
    entries = []
    for port_name, number in ports or (("btls", 443),):
        entry: Obj = {"name": port_name, "protocol": "TCP", "port": number, "targetPort": 8443}
        if app_protocol:
            entry["appProtocol"] = app_protocol
        entries.append(entry)
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, INFRA),
           "spec": {"selector": {"app": POD}, "ports": entries, "type": "ClusterIP", "clusterIP": "10.96.0.30"}}
    return [svc, endpoint_slice(name, "10.1.4.1", ports={e["name"]: 8443 for e in entries})]


def tls_policy(name: str, service: str, *, section: str | None = "btls", hostname: str = "abc.example.com",
               ca: list[Obj] | None = None, sans: list[Obj] | None = None, generation: int = 1) -> Obj:
    target: Obj = {"group": "", "kind": "Service", "name": service}
    if section is not None:
        target["sectionName"] = section
    validation: Obj = {"caCertificateRefs": ca if ca is not None else [ca_ref(CA)], "hostname": hostname}
    if sans is not None:
        validation["subjectAltNames"] = sans
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
            "metadata": _metadata(name, INFRA, generation=generation),
            "spec": {"targetRefs": [target], "validation": validation}}


def ca_ref(name: str, *, group: str = "", kind: str = "ConfigMap") -> Obj:
    return {"group": group, "kind": kind, "name": name}


def exact_rule(path: str, service: str, port: int = 443) -> Obj:
    return route_rule(match(path, type="Exact"), backends=[backend(service, port, group="", kind="Service")])


def tls(sni: str = "abc.example.com", ca: str = CA, names: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"sni": sni, "ca": ca, "names": names}


def ok(service: str, sni: str = "abc.example.com", **fields: Any) -> dict[str, Any]:
    """Answered by the tls-backend pod over TLS with that SNI."""
    return {"backend": service, "pod": POD, "backend_sni": sni, "backend_tls": tls(sni, **fields)}


def fails(service: str, sni: str = "abc.example.com", **fields: Any) -> dict[str, Any]:
    """Sent to the Service over TLS that cannot be verified: the client gets a 5xx."""
    return {"status": FAILS, "routed_to": service, "backend_tls": tls(sni, **fields)}


# ---------------------------------------------------------------------------------------------- BackendTLSPolicy

def _backendtlspolicy() -> None:
    services = ("backendtlspolicy-test", "backendtlspolicy-host-mismatch-test", "backendtlspolicy-cert-mismatch-test",
                "backendtlspolicy-reconcile-test")
    plain = [obj for name in services for obj in tls_service(
        name, app_protocol=None if name in (services[0], services[3]) else "HTTPS")]
    routes = [
        http_route("backendtlspolicy", exact_rule("/backendtlspolicy", services[0]),
                   exact_rule("/backendtlspolicy-host-mismatch", services[1]),
                   exact_rule("/backendtlspolicy-cert-mismatch", services[2]),
                   exact_rule("/backendtlspolicy-reconcile-test", services[3]),
                   parents=[parent("same-namespace", INFRA)], hostnames=["abc.example.com"]),
        http_route("backendtlspolicy-reencrypt", exact_rule("/backendtlspolicy", services[0]),
                   parents=[parent("same-namespace-with-https-listener", INFRA)], hostnames=["https-listener.org"]),
    ]
    policies = [tls_policy("normative-test", services[0]),
                tls_policy("host-mismatch", services[1], hostname="mismatch.example.com"),
                tls_policy("cert-mismatch", services[2], ca=[ca_ref(MISMATCH_CA)])]
    reconcile = tls_policy("reconcile-test", services[3])
    moved = tls_policy("reconcile-test", services[3], ca=[ca_ref(f"{CA}-reconcile-test")], generation=2)
    copied = ca_config_map(f"{CA}-reconcile-test", pem=ca_pem(CA))  # upstream copies the shared CA's ca.crt
    emptied = ca_config_map(f"{CA}-reconcile-test", pem="")
    gateways = ("same-namespace", "same-namespace-with-https-listener")
    base = (*plain, *routes, *policies)
    reconciled_case = ({"host": "abc.example.com", "path": "/backendtlspolicy-reconcile-test"}, ok(services[3]))
    broken_case = ({"host": "abc.example.com", "path": "/backendtlspolicy-reconcile-test"},
                   fails(services[3], ca=""))
    invalid = (PolicyCondition("reconcile-test", "same-namespace", "Accepted", "False", "NoValidCACertificate", 2),
               PolicyCondition("reconcile-test", "same-namespace", "ResolvedRefs", "False", "InvalidCACertificateRef",
                               2))
    _test(
        "BackendTLSPolicy",
        Step(
            objects=(*base, reconcile),
            gateways=gateways,
            status_checks=(
                accepted("same-namespace-with-https-listener", "backendtlspolicy-reencrypt"),
                accepted("same-namespace", "backendtlspolicy"),
                *policy_accepted("normative-test", "same-namespace-with-https-listener"),
                *policy_accepted("normative-test"),
                *policy_accepted("host-mismatch"),
                *policy_accepted("cert-mismatch"),
                *policy_accepted("reconcile-test"),
            ),
            cases=(
                # Re-encrypt: HTTPS from the client, TLS again to the pod, with the policy's hostname as SNI.
                ({"port": 443, "host": "https-listener.org", "sni": "https-listener.org", "path": "/backendtlspolicy"},
                 ok(services[0])),
                ({"host": "abc.example.com", "path": "/backendtlspolicy"}, ok(services[0])),
                # Upstream sends this one with Host abc.example.org, which no route serves (404: not 200 either);
                # the same path with the route's host reaches the check it is named for.
                ({"host": "abc.example.org", "path": "/backendtlspolicy-host-mismatch"}, {"status": 404}),
                ({"host": "abc.example.com", "path": "/backendtlspolicy-host-mismatch"},
                 fails(services[1], sni="mismatch.example.com")),
                ({"host": "abc.example.com", "path": "/backendtlspolicy-cert-mismatch"},
                 fails(services[2], ca=MISMATCH_CA)),
                reconciled_case,
            ),
        ),
        # The policy moved to a ConfigMap that does not exist yet, then created with the same CA, emptied, restored.
        Step(objects=(*base, moved), gateways=gateways, status_checks=invalid, cases=(broken_case,)),
        Step(objects=(*base, moved, copied), gateways=gateways,
             status_checks=policy_accepted("reconcile-test", generation=2),
             cases=(reconciled_case,)),
        Step(objects=(*base, moved, emptied), gateways=gateways, status_checks=invalid, cases=(broken_case,)),
        Step(objects=(*base, moved, copied), gateways=gateways,
             status_checks=policy_accepted("reconcile-test", generation=2),
             cases=(reconciled_case,)),
    )


def _san() -> None:
    names = ("san-dns", "san-dns-mismatch", "san-uri", "san-uri-mismatch", "multiple-sans", "multiple-mismatch-sans")
    sans: dict[str, list[tuple[str, str]]] = {
        "san-dns": [("Hostname", "abc.example.com")],
        "san-dns-mismatch": [("Hostname", "dce.example.com")],
        "san-uri": [("URI", "spiffe://abc.example.com/test-identity")],
        "san-uri-mismatch": [("URI", "spiffe://def.example.com/test-identity")],
        "multiple-sans": [("URI", "spiffe://abc.example.com/test-identity"), ("Hostname", "abc.example.com")],
        "multiple-mismatch-sans": [("URI", "spiffe://def.example.com/test-identity"), ("Hostname", "def.example.com")],
    }
    objects: list[Obj] = []
    cases = []
    for name in names:
        service = f"backendtlspolicy-{name}-test"
        objects += tls_service(service, app_protocol=None if name == "san-dns" else "HTTPS")
        entries = [{"type": kind, ("hostname" if kind == "Hostname" else "uri"): value} for kind, value in sans[name]]
        objects.append(tls_policy(name, service, sans=entries))
        verified = tuple(value for _, value in sans[name])
        wanted = fails(service, names=verified) if "mismatch" in name else ok(service, names=verified)
        cases.append(({"host": "abc.example.com", "path": f"/backendtlspolicy-{name}"}, wanted))
    route = http_route("backendtlspolicy-san-test", *(exact_rule(f"/backendtlspolicy-{name}",
                                                                 f"backendtlspolicy-{name}-test") for name in names),
                       parents=[parent("same-namespace", INFRA)], hostnames=["abc.example.com"])
    _test("BackendTLSPolicySANValidation", Step(
        objects=(*objects, route),
        status_checks=(accepted("same-namespace", "backendtlspolicy-san-test"),
                       *(PolicyCondition(name, "same-namespace", "Accepted", "True", "Accepted") for name in names)),
        cases=tuple(cases),
    ))


def _conflict_resolution() -> None:
    without, with_section, not_conflicted = (f"backendtlspolicy-{name}-test" for name in (
        "conflicted-without-section-name", "conflicted-with-section-name", "not-conflicted"))
    # Created at the same moment, as `kubectl apply` of one file does: namespace/name breaks the tie.
    objects = [
        *tls_service(without, ("https", 443)),
        *tls_service(with_section, ("https-1", 443), ("https-2", 8443)),
        *tls_service(not_conflicted, ("https-1", 443), ("https-2", 8443)),
        tls_policy("conflicted-without-section-name-1", without, section=None, hostname="other.example.com"),
        tls_policy("conflicted-without-section-name-2", without, section=None),
        tls_policy("conflicted-with-section-name-1", with_section, section="https-1", hostname="other.example.com"),
        tls_policy("conflicted-with-section-name-2", with_section, section="https-1"),
        tls_policy("not-conflicted-with-section-name", not_conflicted, section="https-1", hostname="other.example.com"),
        tls_policy("not-conflicted-without-section-name", not_conflicted, section=None),
        http_route("backendtlspolicy-conflict-resolution",
                   exact_rule("/backendtlspolicy-conflicted-without-section-name", without),
                   exact_rule("/backendtlspolicy-conflicted-with-section-name", with_section),
                   exact_rule("/backendtlspolicy-not-conflicted-with-section-name", not_conflicted),
                   exact_rule("/backendtlspolicy-not-conflicted-without-section-name", not_conflicted, 8443),
                   parents=[parent("same-namespace")], hostnames=["abc.example.com"]),
    ]
    conflicted = "Accepted", "False", "Conflicted"
    _test("BackendTLSPolicyConflictResolution", Step(
        objects=tuple(objects),
        status_checks=(
            accepted("same-namespace", "backendtlspolicy-conflict-resolution"),
            PolicyCondition("conflicted-without-section-name-1", "same-namespace", "Accepted", "True", "Accepted"),
            PolicyCondition("conflicted-without-section-name-2", "same-namespace", *conflicted),
            PolicyCondition("conflicted-with-section-name-1", "same-namespace", "Accepted", "True", "Accepted"),
            PolicyCondition("conflicted-with-section-name-2", "same-namespace", *conflicted),
            PolicyCondition("not-conflicted-with-section-name", "same-namespace", "Accepted", "True", "Accepted"),
            PolicyCondition("not-conflicted-without-section-name", "same-namespace", "Accepted", "True", "Accepted"),
        ),
        cases=(
            ({"host": "abc.example.com", "path": "/backendtlspolicy-conflicted-without-section-name"},
             ok(without, "other.example.com")),
            ({"host": "abc.example.com", "path": "/backendtlspolicy-conflicted-with-section-name"},
             ok(with_section, "other.example.com")),
            ({"host": "abc.example.com", "path": "/backendtlspolicy-not-conflicted-with-section-name"},
             ok(not_conflicted, "other.example.com")),
            ({"host": "abc.example.com", "path": "/backendtlspolicy-not-conflicted-without-section-name"},
             ok(not_conflicted)),
        ),
    ))


def _invalid_references() -> None:
    objects: list[Obj] = []
    checks = []
    cases = []
    for name, refs in (("nonexistent-ca-certificate-ref", [ca_ref("nonexistent-ca-certificate")]),
                       ("malformed-ca-certificate-ref", [ca_ref("malformed-ca-certificate")])):
        service = f"backendtlspolicy-{name}-test"
        objects += [*tls_service(service, ("https", 443), app_protocol="HTTPS"),
                    tls_policy(name, service, section=None, ca=refs)]
        checks += [PolicyCondition(name, "same-namespace", "Accepted", "False", "NoValidCACertificate"),
                   PolicyCondition(name, "same-namespace", "ResolvedRefs", "False", "InvalidCACertificateRef")]
        cases.append(({"host": "abc.example.com", "path": f"/backendtlspolicy-{name}"}, fails(service, ca="")))
    malformed = ca_config_map("malformed-ca-certificate")
    malformed["data"] = {}
    route = http_route("backendtlspolicy-invalid-ca-certificate-ref",
                       *(exact_rule(f"/backendtlspolicy-{name}", f"backendtlspolicy-{name}-test")
                         for name in ("nonexistent-ca-certificate-ref", "malformed-ca-certificate-ref")),
                       parents=[parent("same-namespace", INFRA)], hostnames=["abc.example.com"])
    _test("BackendTLSPolicyInvalidCACertificateRef", Step(
        objects=(*objects, malformed, route),
        status_checks=(accepted("same-namespace", "backendtlspolicy-invalid-ca-certificate-ref", resolved=False),
                       *checks),
        cases=tuple(cases),
    ))

    service = "backendtlspolicy-invalid-kind-test"
    _test("BackendTLSPolicyInvalidKind", Step(
        objects=(*tls_service(service, ("https", 443), app_protocol="HTTPS"),
                 tls_policy("invalid-kind", service, section=None,
                            ca=[ca_ref("invalid-kind", group="invalid.io", kind="InvalidKind")]),
                 http_route("backendtlspolicy-invalid-kind-test", exact_rule("/backendtlspolicy-invalid-kind", service),
                            parents=[parent("same-namespace", INFRA)], hostnames=["abc.example.com"])),
        status_checks=(accepted("same-namespace", "backendtlspolicy-invalid-kind-test", resolved=False),
                       PolicyCondition("invalid-kind", "same-namespace", "Accepted", "False", "NoValidCACertificate"),
                       PolicyCondition("invalid-kind", "same-namespace", "ResolvedRefs", "False", "InvalidKind")),
        cases=(({"host": "abc.example.com", "path": "/backendtlspolicy-invalid-kind"}, fails(service, ca="")),),
    ))


def _observed_generation_bump() -> None:
    service = "observed-generation-bump-test"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(service, INFRA),
           "spec": {"selector": {"app": service}, "type": "ClusterIP", "clusterIP": "10.96.0.31",
                    "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443}]}}
    route = http_route("backendtlspolicy-observed-generation-bump",
                       route_rule(backends=[backend(service, 443)]), parents=[parent("same-namespace")])
    before = tls_policy("observed-generation-bump", service, section="https")
    after = tls_policy("observed-generation-bump", service, section="https", hostname="foo.example.com", generation=2)
    _test("BackendTLSPolicyObservedGenerationBump",
          Step(objects=(svc, route, before),
               status_checks=(PolicyCondition("observed-generation-bump", "same-namespace", "Accepted", "True"),)),
          Step(objects=(svc, route, after),
               status_checks=(PolicyCondition("observed-generation-bump", "same-namespace", "Accepted", "True",
                                              generation=2),)))


_backendtlspolicy()
_san()
_conflict_resolution()
_invalid_references()
_observed_generation_bump()
