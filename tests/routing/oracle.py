"""An oracle for Ingress routing, written from the Kubernetes Ingress v1 spec and README "Routing semantics".

It answers the question the proxy answers, for one snapshot: a request (Host header, path) reaches
which Ingress, which path pattern (or the defaultBackend), which Service port, with or without the
plain-HTTP redirect, and which endpoints; or 404; or 400 for a path that cannot be normalized. It
also says which objects deserve a warning. test_incremental compares production against it.

It shares no code with `proxy/routing/` (it imports only the data types of `proxy.objects` and
the settings), so a mistake there is not repeated here. It is written to be obviously right rather
than fast: every request walks every Ingress path of the snapshot.

Where neither the spec nor the README decides (mostly: what a malformed object means), the
choices are written next to the code as "Policy:".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from proxy.objects import Snapshot
from proxy.settings import Settings

EXACT, PREFIX, SPECIFIC = "Exact", "Prefix", "ImplementationSpecific"
DEFAULT_BACKEND = ""  # the pathType an answer carries when the defaultBackend serves it
REFUSED = "400"  # the answer for a request path that cannot be normalized

SSL_REDIRECT, FORCE_SSL_REDIRECT = "ssl-redirect", "force-ssl-redirect"
ANNOTATION_PREFIXES = ("pyngress.dev/", "nginx.ingress.kubernetes.io/")  # in this order of precedence
KNOWN_ANNOTATIONS = (SSL_REDIRECT, FORCE_SSL_REDIRECT)
# ingress-nginx annotations production supports and this oracle does not model (rewrites, redirects, regex
# hosts, canaries: tests/routing/test_nginx_annotations.py covers them). An Ingress carrying one is refused
# here, loudly, so the fuzz can never compare routing the oracle does not know.
NOT_MODELLED = ("rewrite-target", "use-regex", "app-root", "permanent-redirect", "permanent-redirect-code",
                "temporal-redirect", "temporal-redirect-code", "x-forwarded-prefix", "preserve-trailing-slash",
                "canary", "canary-by-header", "canary-by-header-value", "canary-by-header-pattern",
                "canary-by-cookie", "canary-weight", "canary-weight-total")


class NotModelled(Exception):
    """The snapshot uses something the oracle does not model."""

# RFC 3986 section 2.3.
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEX = frozenset("0123456789abcdefABCDEF")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1123 label
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # Service names
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")

Warned = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class Answer:
    """Where the proxy sends a request (everything a user could observe of the routing decision)."""

    namespace: str
    ingress: str
    host: str  # the rule host that took the request: "a.test", "*.c.test", or "" (any host)
    path: str  # the rule path as written ("" when the defaultBackend answers)
    path_type: str  # DEFAULT_BACKEND when the defaultBackend answers
    service: str
    port: str  # the backend port as the Ingress names it: a number or a port name
    redirect: bool  # plain HTTP gets the 308 to https
    endpoints: tuple[tuple[str, int], ...]  # ready (address, port), sorted
    external: tuple[str, int] | None  # ExternalName: (DNS name, port)


# ---------------------------------------------------------------------------------------- small readers

def normalize_path(path: str) -> str | None:
    """The path the proxy matches and forwards, or None when it must be refused (README: 400).

    Percent-encoded unreserved characters are decoded (others keep their escape, upper-cased),
    repeated slashes merge, `.` and `..` segments are removed (RFC 3986 5.2.4); a path that
    climbs above `/`, holds `%00` or a broken escape is refused.
    """
    if not path.startswith("/"):
        return None
    decoded = ""
    i = 0
    while i < len(path):
        char = path[i]
        if char != "%":
            decoded += char
            i += 1
            continue
        digits = path[i + 1 : i + 3]
        if len(digits) != 2 or not set(digits) <= HEX or digits == "00":
            return None
        byte = chr(int(digits, 16))
        decoded += byte if byte in UNRESERVED else "%" + digits.upper()
        i += 3
    segments: list[str] = []
    parts = decoded.split("/")[1:]
    for part in parts:
        if part == "..":
            if not segments:
                return None
            segments.pop()
        elif part not in ("", "."):
            segments.append(part)
    if not segments:
        return "/"
    trailing = parts[-1] in ("", ".", "..")
    return "/" + "/".join(segments) + ("/" if trailing else "")


def elements(normalized: str) -> list[str]:
    """The path elements of a normalized path (a trailing slash adds none)."""
    return [part for part in normalized.split("/") if part]


def request_host(header: str) -> str:
    """The host a Host header names: lower-case, without port or the root's trailing dot."""
    if header.startswith("["):  # an IPv6 literal
        end = header.find("]")
        return header[: end + 1].lower() if end > 0 else header.lower()
    if ":" in header:
        header = header[: header.rindex(":")]
    if header.endswith("."):
        header = header[:-1]
    return header.lower()


def valid_rule_host(host: str) -> bool:
    """A DNS subdomain (RFC 1123) or `*.` and one, never an IP address (Ingress v1 validation).

    Policy (README: hosts are case-insensitive): upper case is accepted and lowered by the caller.
    """
    name = host[2:] if host.startswith("*.") else host
    if not name or len(host) > 253:
        return False
    if not all(DNS_LABEL.fullmatch(label) for label in name.split(".")):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def valid_port_name(name: str) -> bool:
    """An IANA service name, as Kubernetes validates Service port names (IsValidPortName)."""
    return (0 < len(name) <= 15 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) is not None
            and "--" not in name and any("a" <= c <= "z" for c in name))


def creation_time(obj: dict[str, Any]) -> datetime | None:
    """metadata.creationTimestamp (RFC 3339); None when absent or unreadable (such objects are newest)."""
    metadata = obj.get("metadata")
    stamp = metadata.get("creationTimestamp") if isinstance(metadata, dict) else None
    found = RFC3339.fullmatch(stamp) if isinstance(stamp, str) else None
    if found is None:
        return None
    year, month, day, hour, minute, second, _, zone = found.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        return None
    if zone not in ("Z", "z"):
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment -= offset if zone[0] == "+" else -offset
    return moment


def absent(value: Any) -> bool:
    """JSON null and "" both mean "not set" for a Kubernetes string field."""
    return value is None or value == ""


class Broken(Exception):
    """This part of an object cannot be read; whoever owns it gets a warning."""


def as_dict(value: Any) -> dict[str, Any]:
    """An optional object field: {} when null, Broken when not an object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Broken
    return value


def as_list(value: Any) -> list[Any]:
    """An optional list field: [] when null, Broken when not a list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Broken
    return value


def is_port(value: Any) -> bool:
    return type(value) is int and 0 < value < 65536


# ---------------------------------------------------------------------------------------- Ingresses

@dataclass
class PathRule:
    host: str  # the rule host, lower-case; "" for a rule without host
    path: str  # as written ("/" for an ImplementationSpecific path left empty)
    path_type: str
    normalized: str
    service: str
    port: str
    position: int  # written order inside the Ingress


@dataclass
class Ingress:
    namespace: str
    name: str
    created: datetime | None
    hosts: set[str] = field(default_factory=set)  # every valid host its rules name (claimed)
    paths: list[PathRule] = field(default_factory=list)
    default: tuple[str, str] | None = None  # (service, port) of spec.defaultBackend
    ssl_redirect: bool = True
    force_ssl_redirect: bool = False

    def default_backend(self) -> tuple[str, str]:
        assert self.default is not None
        return self.default

    def order(self) -> tuple[bool, datetime, str, str]:
        """Older first; without a readable creationTimestamp after all others; then namespace/name."""
        stamp = self.created or datetime.min.replace(tzinfo=UTC)
        return (self.created is None, stamp, self.namespace, self.name)


def read_backend(value: Any) -> tuple[str, str]:
    """(Service name, port as written) of an Ingress backend; Broken unless a valid service backend."""
    backend = as_dict(value)
    if not backend or backend.get("resource") is not None:  # resource backends are not served
        raise Broken
    service = as_dict(backend.get("service"))
    name = service.get("name")
    if not isinstance(name, str) or not DNS_1035_LABEL.fullmatch(name):
        raise Broken
    port = service.get("port")
    if not isinstance(port, dict):
        raise Broken
    number, port_name = port.get("number"), port.get("name")
    if number is not None and not absent(port_name):
        raise Broken
    if number is not None:
        if not is_port(number):
            raise Broken
        return name, str(number)
    if not isinstance(port_name, str) or not valid_port_name(port_name):
        raise Broken
    return name, port_name


def read_path(entry: Any, host: str, position: int) -> PathRule:
    """One http.paths[] entry; Broken when it cannot be served."""
    if not isinstance(entry, dict):
        raise Broken
    path_type = entry.get("pathType")
    if path_type not in (EXACT, PREFIX, SPECIFIC):
        raise Broken
    path = entry.get("path")
    if absent(path) and path_type == SPECIFIC:
        path = "/"  # the API allows an empty ImplementationSpecific path: everything
    if not isinstance(path, str) or not path.startswith("/"):
        raise Broken
    # Policy (tests/routing/test_path_matching.py): a rule path no request line can carry is refused,
    # and rule paths are normalized like request paths.
    if re.search(r"[\x00-\x20\x7f]", path):
        raise Broken
    normalized = normalize_path(path)
    if normalized is None:
        raise Broken
    service, port = read_backend(entry.get("backend"))
    return PathRule(host, path, path_type, normalized, service, port, position)


def read_annotations(ingress: Ingress, obj: dict[str, Any], warned: set[Warned]) -> None:
    """ssl-redirect and force-ssl-redirect under pyngress.dev/ (first) or nginx.ingress.kubernetes.io/.

    Policy: a value is "true" or "false" (any case, blanks around ignored); a bad value is warned
    and the next spelling (or the default) counts; an unknown annotation under either prefix is
    warned, an unreadable annotations field means none.
    """
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict):
        return
    key = ("Ingress", ingress.namespace, ingress.name)
    for name in annotations:
        if isinstance(name, str) and name.startswith(ANNOTATION_PREFIXES):
            short = name.split("/", 1)[1]
            if short in NOT_MODELLED:
                raise NotModelled(f"Ingress {ingress.namespace}/{ingress.name}: annotation {name}")
            if short not in KNOWN_ANNOTATIONS:
                warned.add(key)
    for short in KNOWN_ANNOTATIONS:
        for prefix in ANNOTATION_PREFIXES:
            if prefix + short not in annotations:
                continue
            value = annotations[prefix + short]
            flag = value.strip().lower() if isinstance(value, str) else None
            if flag not in ("true", "false"):
                warned.add(key)
                continue
            if short == SSL_REDIRECT:
                ingress.ssl_redirect = flag == "true"
            else:
                ingress.force_ssl_redirect = flag == "true"
            break


def read_ingress(namespace: str, name: str, obj: dict[str, Any], warned: set[Warned]) -> Ingress:
    """What one Ingress of ours brings; every broken part is left out and warns the Ingress."""
    ingress = Ingress(namespace, name, creation_time(obj))
    key = ("Ingress", namespace, name)
    read_annotations(ingress, obj, warned)
    spec = obj.get("spec") or {}
    rules = spec.get("rules")
    if rules is not None and not isinstance(rules, list):
        warned.add(key)  # Policy: unreadable rules: the Ingress brings nothing (not even its defaultBackend)
        return ingress
    if spec.get("defaultBackend") is not None:
        try:
            ingress.default = read_backend(spec["defaultBackend"])
        except Broken:
            warned.add(key)
    position = 0
    for rule in rules or []:
        if not isinstance(rule, dict):
            warned.add(key)
            continue
        host = rule.get("host")
        if not absent(host):
            if not isinstance(host, str) or not valid_rule_host(host.lower()):
                warned.add(key)  # the rule is skipped: it serves neither that host nor any other
                continue
            host = host.lower()
            # Policy: a valid host is claimed even when the rest of its rule is broken (fail closed:
            # its requests never fall through to another Ingress's wildcard or host-less rules).
            ingress.hosts.add(host)
        else:
            host = ""
        http = rule.get("http")
        try:
            entries = as_list(as_dict(http).get("paths"))
        except Broken:
            warned.add(key)
            continue
        for entry in entries:
            try:
                ingress.paths.append(read_path(entry, host, position))
            except Broken:
                warned.add(key)
            position += 1
    return ingress


# ---------------------------------------------------------------------------------------- classes

def class_selection(snapshot: Snapshot, settings: Settings, warned: set[Warned]) -> tuple[set[str], bool]:
    """(class names we serve, whether Ingresses without a class are ours).

    Ours: the IngressClass named by --ingress-class (whether or not it exists) and every IngressClass
    whose spec.controller is our controller; class-less Ingresses too when one of those is the
    default class (is-default-class "true") or --watch-ingress-without-class. A broken IngressClass
    that is ours warns; another controller's does not concern us.
    """
    names = {settings.ingress_class}
    without_class = settings.watch_ingress_without_class
    for name, obj in snapshot.ingress_classes.items():
        by_name = name == settings.ingress_class
        try:
            if not isinstance(obj, dict):
                raise Broken
            controller = as_dict(obj.get("spec")).get("controller")
            if not absent(controller) and not isinstance(controller, str):
                raise Broken
            if not by_name and controller != settings.controller_name:
                continue
            names.add(name)
            annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
            if annotations.get("ingressclass.kubernetes.io/is-default-class") == "true":
                without_class = True
        except Broken:
            if by_name or name in names:
                warned.add(("IngressClass", "", name))
    return names, without_class


def is_ours(obj: Any, names: set[str], without_class: bool, settings: Settings) -> bool:
    """spec.ingressClassName, else the legacy kubernetes.io/ingress.class annotation, else class-less.

    Raises Broken when a field that decides it cannot be read.
    """
    if not isinstance(obj, dict):
        raise Broken
    class_name = as_dict(obj.get("spec")).get("ingressClassName")
    if not absent(class_name):
        if not isinstance(class_name, str):
            raise Broken
        return class_name in names
    annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
    legacy = annotations.get("kubernetes.io/ingress.class")
    if not absent(legacy):
        return legacy == settings.ingress_class
    return without_class


# ---------------------------------------------------------------------------------------- TLS

def tls_names(obj: dict[str, Any]) -> set[str]:
    """The hosts the HTTPS listener serves for this Ingress (README "TLS": every host a spec.tls entry names).

    An entry without hosts (null or []) names its Ingress's rule hosts. Policy, as the certificate
    store reads entries: a broken entry (not an object, a secretName that is set but no string,
    hosts that are no list) names nothing; names are trimmed, lower-cased, without trailing dots.
    """
    spec = obj.get("spec")
    entries = spec.get("tls") if isinstance(spec, dict) else None
    if not isinstance(entries, list):
        return set()
    found: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        secret = entry.get("secretName")
        if secret and not isinstance(secret, str):
            continue
        hosts = entry.get("hosts")
        if hosts is None or hosts == []:
            rules = spec.get("rules")
            hosts = [rule.get("host") for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []
        if not isinstance(hosts, list):
            continue
        found.update(host.strip().lower().rstrip(".") for host in hosts if isinstance(host, str) and host.strip())
    return found


def has_tls(rule_host: str, names: set[str]) -> bool:
    """The rule host's requests arrive with a certificate of their own: named exactly, or under a
    one-label wildcard; a wildcard rule only by that same wildcard; host-less rules never.

    Policy: decided per rule host, as ingress-nginx decides per server block: a request for x.c.test
    that the *.c.test rule takes follows *.c.test's TLS, even when x.c.test has a certificate.
    """
    if not rule_host:
        return False
    if rule_host in names:
        return True
    if rule_host.startswith("*."):
        return False
    label, _, rest = rule_host.partition(".")
    return bool(label and rest) and "*." + rest in names


# ---------------------------------------------------------------------------------------- Services

@dataclass
class Resolution:
    endpoints: tuple[tuple[str, int], ...] = ()
    external: tuple[str, int] | None = None
    service_broken: bool = False  # warns each Ingress routing to it
    warned: set[Warned] = field(default_factory=set)  # EndpointSlices and Endpoints


def port_entries(value: Any) -> list[tuple[str, str, int | None]]:
    """(name, protocol, port) of a `ports` list (Service, EndpointSlice, Endpoints subset).

    name defaults to "", protocol to TCP; port may be missing (checked where it is needed).
    """
    entries = []
    for item in as_list(value):
        if not isinstance(item, dict):
            raise Broken
        name, protocol, port = item.get("name"), item.get("protocol"), item.get("port")
        name = "" if name is None else name
        protocol = "TCP" if absent(protocol) else protocol
        if not isinstance(name, str) or not isinstance(protocol, str) or not (port is None or is_port(port)):
            raise Broken
        entries.append((name, protocol, port))
    return entries


def target_port(ports: Any, name: str) -> int | None:
    """The TCP port a slice or Endpoints subset lists under the Service port's name; None when none."""
    for entry_name, protocol, port in port_entries(ports):
        if entry_name == name and protocol == "TCP":
            if port is None:
                raise Broken
            return port
    return None


def ip_address(value: Any) -> str:
    """The canonical text of an IP address (so equal addresses compare equal); Broken otherwise.

    Policy: any IPv4 or IPv6 address is served whatever the slice's addressType says.
    """
    if not isinstance(value, str):
        raise Broken
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Broken from None


def resolve(snapshot: Snapshot, namespace: str, service: str, port: str) -> Resolution:
    """Service port (by number or name) → the EndpointSlice port of that Service port's name → ready
    endpoints; legacy Endpoints only when the Service has no EndpointSlice; ExternalName by name."""
    result = Resolution()
    obj = snapshot.services.get((namespace, service))
    try:
        if not isinstance(obj, dict):  # also: no such Service
            raise Broken
        spec = as_dict(obj.get("spec"))
        # Policy: a `ports` entry of the wrong shape breaks the whole Service; the TCP entry the backend
        # names must have a port number (the API requires one); what other entries lack does not matter.
        by_number = port.isdigit()
        chosen = [(name, number) for name, protocol, number in port_entries(spec.get("ports"))
                  if protocol == "TCP" and (str(number) == port if by_number else name == port)]
        port_name, number = chosen[0] if chosen else ("", None)
        if chosen and number is None:
            raise Broken
        kind = spec.get("type")
        if not absent(kind) and not isinstance(kind, str):
            raise Broken
        if kind == "ExternalName":
            external = spec.get("externalName")
            if absent(external) or not isinstance(external, str):
                raise Broken
            if number is not None:
                result.external = (external, number)
            elif by_number:
                result.external = (external, int(port))  # an ExternalName Service need not list its ports
            else:
                raise Broken
            return result
        if not chosen:
            raise Broken
    except Broken:
        result.service_broken = True
        return result

    found: set[tuple[str, int]] = set()
    slices = snapshot.endpoint_slices.get((namespace, service)) or {}
    for slice_name, piece in slices.items():
        try:
            if not isinstance(piece, dict) or piece.get("addressType") not in ("IPv4", "IPv6"):
                raise Broken  # Policy: FQDN slices are not served (warned)
            target = target_port(piece.get("ports"), port_name)
            if target is None:
                continue
            endpoints = as_list(piece.get("endpoints"))
        except Broken:
            result.warned.add(("EndpointSlice", namespace, slice_name))
            continue
        for item in endpoints:
            try:
                if not isinstance(item, dict):
                    raise Broken
                ready = as_dict(item.get("conditions")).get("ready")
                if ready is False:
                    continue
                if ready is not None and ready is not True:  # a missing ready counts as ready
                    raise Broken
                # Policy: one bad address skips its endpoint (warned), the slice's others still count.
                addresses = [ip_address(address) for address in as_list(item.get("addresses"))]
            except Broken:
                result.warned.add(("EndpointSlice", namespace, slice_name))
                continue
            found.update((address, target) for address in addresses)
    if not slices:
        legacy = snapshot.endpoints.get((namespace, service))
        if legacy is not None:
            try:
                found = legacy_endpoints(legacy, port_name)
            except Broken:
                result.warned.add(("Endpoints", namespace, service))  # Policy: skipped whole
    result.endpoints = tuple(sorted(found))
    return result


def legacy_endpoints(obj: Any, port_name: str) -> set[tuple[str, int]]:
    """The ready addresses (`addresses`, not `notReadyAddresses`) of v1 Endpoints, per subset port."""
    if not isinstance(obj, dict):
        raise Broken
    found: set[tuple[str, int]] = set()
    for subset in as_list(obj.get("subsets")):
        if not isinstance(subset, dict):
            raise Broken
        target = target_port(subset.get("ports"), port_name)
        if target is None:
            continue
        for item in as_list(subset.get("addresses")):
            if not isinstance(item, dict) or absent(item.get("ip")):
                raise Broken
            found.add((ip_address(item["ip"]), target))
    return found


# ---------------------------------------------------------------------------------------- the oracle

class Oracle:
    """The routing of one snapshot, answered request by request."""

    def __init__(self, snapshot: Snapshot, settings: Settings) -> None:
        self.snapshot = snapshot
        self.warned: set[Warned] = set()
        names, without_class = class_selection(snapshot, settings, self.warned)
        self.ingresses: list[Ingress] = []
        self.tls: set[str] = set()
        for (namespace, name), obj in snapshot.ingresses.items():
            try:
                if not is_ours(obj, names, without_class, settings):
                    continue  # another controller's: silently left alone
            except Broken:
                self.warned.add(("Ingress", namespace, name))
                continue
            self.ingresses.append(read_ingress(namespace, name, obj, self.warned))
            self.tls |= tls_names(obj)
        self.ingresses.sort(key=Ingress.order)  # oldest first
        self._resolved: dict[tuple[str, str, str], Resolution] = {}
        self._warn_losers_and_backends()

    # ------------------------------------------------------------------ requests

    def answer(self, host_header: str, path: str) -> Answer | str | None:
        """The Answer, REFUSED (400), or None (404)."""
        normalized = normalize_path(path)
        if normalized is None:
            return REFUSED
        rule_host = self.rule_host(request_host(host_header))
        candidates = [(ingress, rule) for ingress in self.ingresses for rule in ingress.paths
                      if rule.host == rule_host and self.matches(rule, normalized)]
        if candidates:
            ingress, rule = min(candidates, key=lambda found: self.precedence(*found, normalized))
            return self._answer(ingress, rule_host, rule.path, rule.path_type, rule.service, rule.port)
        for ingress in self.ingresses:  # oldest first
            if ingress.default is not None and (not rule_host or rule_host in ingress.hosts):
                return self._answer(ingress, rule_host, "", DEFAULT_BACKEND, *ingress.default_backend())
        return None

    def rule_host(self, host: str) -> str:
        """Which rules a request host reaches: its own, else a one-label wildcard's, else host-less ones.

        A host some rule names is claimed: its requests never fall through to a wildcard or to
        host-less rules, even for paths it does not have.
        """
        claimed = {name for ingress in self.ingresses for name in ingress.hosts}
        if host in claimed:
            return host
        label, _, rest = host.partition(".")
        if label and rest and "*." + rest in claimed:
            return "*." + rest
        return ""

    @staticmethod
    def matches(rule: PathRule, normalized: str) -> bool:
        if rule.path_type == EXACT:
            return rule.normalized == normalized
        wanted = elements(rule.normalized)  # Prefix and ImplementationSpecific: element by element
        return elements(normalized)[: len(wanted)] == wanted

    @staticmethod
    def precedence(ingress: Ingress, rule: PathRule, normalized: str) -> tuple[Any, ...]:
        """Lower wins: an Exact match, then the longest Prefix (element count); at the same path
        Prefix over ImplementationSpecific; then the older Ingress, namespace/name; then written order."""
        return (rule.path_type != EXACT, -len(elements(rule.normalized)), rule.path_type == SPECIFIC,
                ingress.order(), rule.position)

    def _answer(self, ingress: Ingress, rule_host: str, path: str, path_type: str, service: str,
                port: str) -> Answer:
        redirect = ingress.force_ssl_redirect or (ingress.ssl_redirect and has_tls(rule_host, self.tls))
        resolution = self.resolution(ingress.namespace, service, port)
        return Answer(ingress.namespace, ingress.name, rule_host, path, path_type, service, port, redirect,
                      resolution.endpoints, resolution.external)

    def resolution(self, namespace: str, service: str, port: str) -> Resolution:
        key = (namespace, service, port)
        if key not in self._resolved:
            self._resolved[key] = resolve(self.snapshot, namespace, service, port)
        return self._resolved[key]

    # ------------------------------------------------------------------ warnings

    def _warn_losers_and_backends(self) -> None:
        """Warn every Ingress that loses a path or defaultBackend to another claim, and every Ingress
        whose serving backends are broken (a Service problem), plus the broken slices and Endpoints."""
        serving: list[tuple[Ingress, str, str]] = []  # (owner, service, port) of every rule that serves
        for ingress in self.ingresses:
            for rule in ingress.paths:
                rivals = [(other, theirs) for other in self.ingresses for theirs in other.paths
                          if theirs.host == rule.host and self.same_path(theirs, rule)]
                winner = min(rivals, key=lambda found: self.claim_order(*found))
                if winner[1] is rule:
                    serving.append((ingress, rule.service, rule.port))
                else:
                    self.warned.add(("Ingress", ingress.namespace, ingress.name))
        with_default = [ingress for ingress in self.ingresses if ingress.default is not None]
        hosts = {host for ingress in with_default for host in ingress.hosts}
        for host in hosts:
            winner, *losers = [ingress for ingress in with_default if host in ingress.hosts]
            serving.append((winner, *winner.default_backend()))
            for loser in losers:
                self.warned.add(("Ingress", loser.namespace, loser.name))
        if with_default:
            serving.append((with_default[0], *with_default[0].default_backend()))
            for loser in with_default[1:]:
                if not loser.hosts:  # one whose defaultBackend serves hosts of its own is not warned
                    self.warned.add(("Ingress", loser.namespace, loser.name))
        for ingress, service, port in serving:
            resolution = self.resolution(ingress.namespace, service, port)
            if resolution.service_broken:
                self.warned.add(("Ingress", ingress.namespace, ingress.name))
            self.warned |= resolution.warned

    @staticmethod
    def same_path(one: PathRule, other: PathRule) -> bool:
        """Two rules claim the same path: both Exact with equal paths, or both Prefix-like with equal elements."""
        if (one.path_type == EXACT) != (other.path_type == EXACT):
            return False
        if one.path_type == EXACT:
            return one.normalized == other.normalized
        return elements(one.normalized) == elements(other.normalized)

    @staticmethod
    def claim_order(ingress: Ingress, rule: PathRule) -> tuple[Any, ...]:
        return (rule.path_type == SPECIFIC, ingress.order(), rule.position)
