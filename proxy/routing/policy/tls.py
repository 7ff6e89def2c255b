"""The Gateway API's `BackendTLSPolicy` (v1) → TLS to a Service's pods, a Service-level `PolicySpec` layer.

`validation.hostname` is the SNI and the name verified, `subjectAltNames` replace it for verification,
`caCertificateRefs` name ConfigMaps whose `ca.crt` holds the CA bundle (PEM), or
`wellKnownCACertificates: System` trusts the system's store. When no CA reference can be resolved, the
policy still applies, with nothing to verify against: connections fail rather than fall back to plain
HTTP or to the system store (what the spec asks for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.objects import Key, KubeObject, Warning
from proxy.routing.fields import Malformed, mapping, require_object, sequence, text
from proxy.routing.gateway.hostnames import check_hostname
from proxy.routing.gateway.meta import age, generation
from proxy.routing.policies import BackendTLS
from proxy.routing.policy.reading import check_fields
from proxy.routing.policy.spec import PolicySpec
from proxy.routing.policy.targets import SERVICE, TargetRef, read_targets

KIND = "BackendTLSPolicy"
CA_KEY = "ca.crt"
_PEM = b"-----BEGIN CERTIFICATE-----"
# A sectionName names one port of the Service (its `name`).
TARGET_KINDS: dict[tuple[str, str], bool] = {("", SERVICE): True}


@dataclass(slots=True)
class TlsPolicy:
    key: Key
    obj: Any
    generation: int
    age: float
    targets: tuple[TargetRef, ...] = ()
    spec: PolicySpec | None = None
    problem: str = ""
    # (reason, message) of the ResolvedRefs condition when a CA reference failed.
    unresolved: tuple[str, str] | None = None
    # The ConfigMaps it named and what the snapshot held there (None: missing): the reading stays valid
    # while these are the identical objects.
    seen: dict[Key, Any] = field(default_factory=dict)
    warnings: list[Warning] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(Warning(KIND, self.key[0], self.key[1], message))

    @property
    def order(self) -> tuple[float, str, str]:
        return (self.age, self.key[0], self.key[1])


def config_map_refs(obj: Any) -> set[Key]:
    """The ConfigMaps a BackendTLSPolicy's caCertificateRefs name (for the cache: they matter while named)."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    validation = spec.get("validation") if isinstance(spec, dict) else None
    refs = validation.get("caCertificateRefs") if isinstance(validation, dict) else None
    namespace = ((obj.get("metadata") or {}).get("namespace") or "") if isinstance(obj, dict) else ""
    found = set()
    for ref in refs if isinstance(refs, list) else ():
        if isinstance(ref, dict) and ref.get("kind") == "ConfigMap" and (ref.get("group") or "") == "":
            name = ref.get("name")
            if isinstance(name, str) and name:
                found.add((namespace, name))
    return found


def read_tls_policy(key: Key, obj: Any, config_maps: Mapping[Key, KubeObject]) -> TlsPolicy:
    """Judge one BackendTLSPolicy against the snapshot's ConfigMaps; never raises."""
    policy = TlsPolicy(key, obj, generation(obj), age(obj))
    try:
        body = mapping(require_object(obj, KIND), "spec", "", required=True)
        policy.targets = read_targets(body, key[0], kinds=TARGET_KINDS)
        check_fields(body, ("targetRefs", "validation", "options"), "spec.", policy.warn)
        if body.get("options"):
            policy.warn("spec.options are not supported; ignored")
        policy.spec = PolicySpec(tls=_tls(policy, mapping(body, "validation", "spec.", required=True), config_maps))
    except Malformed as error:
        policy.problem = str(error)
        policy.warn(f"not accepted: {error}")
    for target in policy.targets:
        if target.problem:
            policy.warn(f"{target.problem}; that target is ignored")
    return policy


def _tls(policy: TlsPolicy, body: dict[str, Any], config_maps: Mapping[Key, KubeObject]) -> BackendTLS:
    where = "spec.validation."
    check_fields(body, ("caCertificateRefs", "wellKnownCACertificates", "hostname", "subjectAltNames"), where,
                 policy.warn)
    hostname = check_hostname(body.get("hostname"), f"{where}hostname", wildcard=False)
    names = []
    for index, item in enumerate(sequence(body, "subjectAltNames", where)):
        at = f"{where}subjectAltNames[{index}]."
        item = require_object(item, at[:-1])
        kind = text(item, "type", at, required=True)
        if kind == "Hostname":
            names.append(check_hostname(item.get("hostname"), f"{at}hostname"))
        elif kind == "URI":
            uri = text(item, "uri", at, required=True)
            if "://" not in uri or any(ord(c) < 0x21 for c in uri):
                raise Malformed(f"{at}uri {uri!r:.60} is not an absolute URI")
            names.append(uri)
        else:
            raise Malformed(f"{at}type {kind!r:.20} is not Hostname or URI")
    refs = sequence(body, "caCertificateRefs", where)
    well_known = text(body, "wellKnownCACertificates", where)
    if refs and well_known:
        raise Malformed(f"{where}caCertificateRefs and wellKnownCACertificates cannot both be set")
    if well_known:
        if well_known != "System":
            raise Malformed(f"{where}wellKnownCACertificates {well_known!r:.20} is not System")
        return BackendTLS(sni=hostname, subject_alt_names=tuple(names), system_ca=True)
    if not refs:
        raise Malformed(f"{where}caCertificateRefs or wellKnownCACertificates is required")
    bundle: list[bytes] = []
    problems: list[tuple[str, str]] = []
    for index, ref in enumerate(refs):
        at = f"{where}caCertificateRefs[{index}]"
        ref = require_object(ref, at)
        name = text(ref, "name", f"{at}.", required=True)
        group, ref_kind = ref.get("group") or "", ref.get("kind")
        if (group, ref_kind) != ("", "ConfigMap"):
            problems.append(("InvalidKind", f"{at}: {group or 'core'}/{ref_kind} is not a ConfigMap"))
            continue
        found = policy.seen[(policy.key[0], name)] = config_maps.get((policy.key[0], name))
        pem = _ca_bundle(found)
        if pem is None:
            problems.append(("InvalidCACertificateRef", f"{at}: ConfigMap {name} not found or without a PEM "
                                                        f"certificate in {CA_KEY!r}"))
        else:
            bundle.append(pem)
    if problems:
        policy.unresolved = problems[0][0], "; ".join(message for _, message in problems)
        for _, message in problems:
            policy.warn(f"{message}{'' if bundle else '; no CA to verify with: connections to its targets fail'}")
    return BackendTLS(sni=hostname, ca=b"".join(bundle), subject_alt_names=tuple(names))


def _ca_bundle(obj: KubeObject | None) -> bytes | None:
    data = obj.get("data") if isinstance(obj, dict) else None
    value = data.get(CA_KEY) if isinstance(data, dict) else None
    if not isinstance(value, str) or _PEM not in value.encode("utf-8", "replace"):
        return None
    pem = value.encode()
    return pem if pem.endswith(b"\n") else pem + b"\n"
