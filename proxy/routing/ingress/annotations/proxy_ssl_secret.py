"""`proxy-ssl-secret`: "namespace/name" of a Secret for TLS to the pods: `ca.crt` verifies the pods'
certificates (with `proxy-ssl-verify: on`), `tls.crt` and `tls.key` (when present) are the client
certificate presented to them. The Secret must be in the Ingress's namespace (ingress-nginx refuses
others by default); a missing or unusable Secret makes the Ingress's routes answer 503
(routing.ingress.nginx_traffic), as ingress-nginx denies the location."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "proxy-ssl-secret"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    namespace, sep, name = value.strip().partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise Invalid(f"{value!r:.80} is not namespace/name")
    return value.strip()
