"""Which certificate each TLS host gets, decided from a snapshot (no network, no disk, no clock unless asked).

`tls_hosts` reads the `spec.tls` entries of the Ingresses we serve; `build_store` turns that map
into a `CertStore`, checking each referenced Secret once. Every problem is a Warning and the host
concerned falls back to the default certificate; all other hosts keep theirs.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Mapping  # isinstance against typing.Mapping is several times slower
from datetime import UTC, datetime
from typing import Any

from proxy.objects import Key, KubeObject, Snapshot, Warning
from proxy.tls.certs import Certificate, covers, parse_secret
from proxy.tls.client_auth import ClientAuthContext, ClientCa, add_client_ca, available, parse_ca_secret
from proxy.tls.store import CertStore, prepare_context

# A DNS name, optionally behind one leading "*." label; "_" is tolerated as many resolvers do.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
MAX_HOST_LENGTH = 253

# What tls_hosts maps a host to when its spec.tls entry names no Secret: the default certificate.
NO_SECRET = ""


def tls_hosts(
    snapshot: Snapshot, ingresses: Iterable[KubeObject]
) -> tuple[dict[str, tuple[str, str]], list[Warning]]:
    """TLS host pattern → (namespace, secretName) over the given Ingresses, with warnings.

    The oldest Ingress (creationTimestamp, then namespace/name) wins a host named with different
    Secrets. An entry without `secretName` maps its hosts to (namespace, NO_SECRET): served over
    HTTPS with the default certificate. An entry without `hosts` applies to the Ingress's rule
    hosts. Secrets missing from the snapshot are reported here (build_store does not repeat it);
    their hosts stay in the map and get the default certificate.
    """
    hosts: dict[str, tuple[str, str]] = {}
    owners: dict[str, tuple[str, str]] = {}
    warnings: list[Warning] = []
    # Only Ingresses with spec.tls take part: sorting all of them by age cost most of a rebuild at 5,000.
    with_tls = [i for i in ingresses if isinstance(i, Mapping) and _has_tls(i)]
    for ingress in sorted(with_tls, key=_age_key):
        meta = _metadata(ingress)
        namespace = str(meta.get("namespace") or "default")
        name = str(meta.get("name") or "")
        spec = ingress.get("spec")
        if not isinstance(spec, Mapping):
            continue
        entries = spec.get("tls")
        if not entries:
            continue

        def warn(message: str) -> None:
            warnings.append(Warning("Ingress", namespace, name, message))  # noqa: B023  (used in this iteration only)

        if not isinstance(entries, list):
            warn("spec.tls is not a list; ignored")
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                warn(f"spec.tls[{index}] is not an object; ignored")
                continue
            secret = entry.get("secretName") or NO_SECRET
            if not isinstance(secret, str):
                warn(f"spec.tls[{index}].secretName is not a string; ignored")
                continue
            listed = entry.get("hosts")
            if listed is None or listed == []:  # the API drops an empty list: both mean "unspecified"
                listed = _rule_hosts(spec)
                if not listed:
                    warn(f"spec.tls[{index}] lists no hosts and the Ingress has no rule hosts; ignored")
                    continue
            if not isinstance(listed, list):
                warn(f"spec.tls[{index}].hosts is not a list; ignored")
                continue
            if secret and (namespace, secret) not in snapshot.secrets:
                warn(f"TLS Secret {namespace}/{secret} not found; its hosts use the default certificate")
            for raw in listed:
                host = raw.strip().lower().rstrip(".") if isinstance(raw, str) else ""
                if not _valid_host(host):
                    warn(f"spec.tls[{index}]: invalid TLS host {raw!r}; ignored")
                    continue
                target = (namespace, secret)
                current = hosts.get(host)
                if current is None:
                    hosts[host] = target
                    owners[host] = (namespace, name)
                elif current != target:
                    owner = "/".join(owners[host])
                    warn(
                        f"TLS host {host} already uses {_describe(current)} from Ingress {owner}; "
                        f"{_describe(target)} ignored for it"
                    )
    return hosts, warnings


def build_store(
    snapshot: Snapshot,
    host_map: Mapping[str, tuple[str, str]],
    *,
    default: Certificate,
    reuse: CertStore | None = None,
    now: datetime | None = None,
    client_auth: Mapping[str, tuple[Key, str, int]] | None = None,
) -> tuple[CertStore, list[Warning]]:
    """A CertStore for `host_map` (from tls_hosts), checking each Secret once.

    `client_auth`: host -> (CA Secret, verify mode, depth) of the hosts asking client certificates
    (ingress-nginx's auth-tls-*); each gets its own context (tls.client_auth). A CA Secret missing or
    unusable is a warning and the host gets the plain context, whose connections carry no verdict: the
    routes' check then answers 503 (fail closed).

    A Secret that fails a check, or that OpenSSL refuses, gives one warning and its hosts the
    default certificate (explicitly: a wildcard entry does not step in). A host the certificate's
    SANs do not cover is served anyway, with a warning. Certificates whose digest is in `reuse`
    are not reloaded. CPU work when certificates changed: run it off the event loop.
    """
    now = now or datetime.now(UTC)
    warnings: list[Warning] = []
    known: dict[str, ssl.SSLContext] = dict(reuse.contexts) if reuse is not None else {}
    parsed: dict[Key, Certificate | None] = {}
    by_secret: dict[Key, list[str]] = {}
    for host, key in host_map.items():
        by_secret.setdefault(key, []).append(host)

    for key in sorted(by_secret):
        namespace, name = key
        if not name:
            parsed[key] = None
            continue
        secret = snapshot.secrets.get(key)
        if secret is None:  # tls_hosts reported it
            parsed[key] = None
            continue
        result = parse_secret(secret, now=now)
        hosts = sorted(by_secret[key])
        if isinstance(result, str):
            warnings.append(Warning("Secret", namespace, name, f"{result}; {_fallback(hosts)}"))
            parsed[key] = None
            continue
        if result.digest not in known:
            try:
                known[result.digest] = prepare_context(result)
            except (ssl.SSLError, ValueError, OSError) as exc:
                message = f"OpenSSL refused the certificate: {exc}; {_fallback(hosts)}"
                warnings.append(Warning("Secret", namespace, name, message))
                parsed[key] = None
                continue
        uncovered = [host for host in hosts if not covers(result, host)]
        if uncovered:
            names = ", ".join(result.dns_names) or "none"
            message = f"certificate does not cover {', '.join(uncovered)} (SAN DNS names: {names})"
            warnings.append(Warning("Secret", namespace, name, message))
        parsed[key] = result

    certificates = {host: parsed[key] or default for host, key in host_map.items()}
    authenticating: dict[str, tuple[str, ssl.SSLContext, ClientAuthContext]] = {}
    usable, why = available() if client_auth else (True, "")
    if not usable:
        warnings.append(Warning("Secret", "", "", f"client certificates cannot be asked for: {why}; "
                                f"{', '.join(sorted(client_auth or ()))} answer 503"))
    elif client_auth:
        cas: dict[Key, ClientCa | None] = {}
        for host in sorted(client_auth):
            secret_key, verify, depth = client_auth[host]
            if secret_key not in cas:
                cas[secret_key] = _client_ca(snapshot, secret_key, warnings)
            ca = cas[secret_key]
            if ca is None:
                continue
            cert = certificates.setdefault(host, default)
            reuse_key = f"auth:{cert.digest}:{ca.digest}:{verify}:{depth}:{secret_key[0]}/{secret_key[1]}"
            context = known.get(reuse_key)
            auth = reuse.client_auth.get(context) if context is not None and reuse is not None else None
            try:
                if context is None or auth is None:
                    context = prepare_context(cert)
                    auth = add_client_ca(context, ca, secret="/".join(secret_key), verify=verify, depth=depth)
            except (ssl.SSLError, ValueError, OSError) as exc:
                namespace, name = secret_key
                warnings.append(Warning("Secret", namespace, name, f"OpenSSL refused the client CA: {exc}; "
                                        f"{host} answers 503"))
                continue
            authenticating[host] = (reuse_key, context, auth)
    return CertStore(certificates, default=default, contexts=known, authenticating=authenticating), warnings


def _client_ca(snapshot: Snapshot, key: Key, warnings: list[Warning]) -> ClientCa | None:
    namespace, name = key
    secret = snapshot.secrets.get(key)
    if secret is None:
        warnings.append(Warning("Secret", namespace, name, "auth-tls-secret not found; the hosts using it answer 503"))
        return None
    ca = parse_ca_secret(secret)
    if isinstance(ca, str):
        warnings.append(Warning("Secret", namespace, name, f"unusable as auth-tls-secret: {ca}; the hosts using it "
                                "answer 503"))
        return None
    return ca


def default_certificate(
    snapshot: Snapshot, reference: str, *, generated: Certificate, now: datetime | None = None
) -> tuple[Certificate, list[Warning]]:
    """The --default-ssl-certificate Secret ("namespace/name") if usable, else `generated`."""
    if not reference:
        return generated, []
    fallback = "using a self-signed certificate"
    namespace, slash, name = reference.partition("/")
    if not slash or not namespace or not name or "/" in name:
        message = f"default SSL certificate must be given as namespace/name; {fallback}"
        return generated, [Warning("Secret", "", reference, message)]
    secret = snapshot.secrets.get((namespace, name))
    if secret is None:
        return generated, [Warning("Secret", namespace, name, f"default SSL certificate Secret not found; {fallback}")]
    result = parse_secret(secret, now=now)
    if isinstance(result, str):
        message = f"default SSL certificate unusable: {result}; {fallback}"
        return generated, [Warning("Secret", namespace, name, message)]
    return result, []


def _has_tls(ingress: Mapping[str, Any]) -> bool:
    spec = ingress.get("spec")
    return isinstance(spec, Mapping) and bool(spec.get("tls"))


def _metadata(ingress: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = ingress.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _age_key(ingress: KubeObject) -> tuple[str, str, str]:
    meta = _metadata(ingress)
    # RFC 3339 UTC timestamps sort as strings; a missing one sorts first.
    return (
        str(meta.get("creationTimestamp") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def _rule_hosts(spec: Mapping[str, Any]) -> list[str]:
    rules = spec.get("rules")
    if not isinstance(rules, list):
        return []
    hosts = (rule.get("host") for rule in rules if isinstance(rule, Mapping))
    return [host for host in hosts if isinstance(host, str) and host]


def _valid_host(host: str) -> bool:
    return 0 < len(host) <= MAX_HOST_LENGTH and _HOST_PATTERN.fullmatch(host) is not None


def _describe(target: tuple[str, str]) -> str:
    namespace, secret = target
    return f"Secret {namespace}/{secret}" if secret else "the default certificate"


def _fallback(hosts: list[str]) -> str:
    return f"{', '.join(hosts)} use the default certificate"
