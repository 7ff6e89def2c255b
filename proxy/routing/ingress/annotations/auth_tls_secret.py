"""`auth-tls-secret`: "namespace/name" (or "name", in the Ingress's namespace) of the Secret whose `ca.crt`
(and optional `ca.crl`) verifies client certificates; the TLS host then asks for one (routing.ingress.client_auth).

ingress-nginx denies the location when the Secret cannot be used: an invalid value, a Secret in another
namespace, a missing or unusable Secret make the Ingress's routes answer 503 (fail closed)."""

from proxy.routing.ingress.annotations.values import BASIC_CHARS, Invalid, matching

NAME = "auth-tls-secret"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed, as ingress-nginx)"


def parse(value: str) -> str:
    text = matching(value.strip(), BASIC_CHARS, "namespace/name")
    namespace, sep, name = text.partition("/")
    if not text or (sep and (not namespace or not name or "/" in name)):
        raise Invalid(f"{value!r:.80} is not namespace/name")
    return text
