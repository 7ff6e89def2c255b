"""`mirror-target`: copy every request of the Ingress to this http URL (nginx's mirror module); the copy's
answer is ignored. The URL may end with `$request_uri` (or other nginx variables routing.external_auth
understands); its host must be a Service's cluster DNS name (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`).
An invalid value turns mirroring off for the Ingress (ingress-nginx's validator)."""

from proxy.routing.ingress.annotations.values import Invalid, auth_url

NAME = "mirror-target"
DEFAULT = ""
DISABLED = "no request is mirrored"


def parse(value: str) -> str:
    if not value.strip():
        raise Invalid("is empty")
    return auth_url(value.strip())
