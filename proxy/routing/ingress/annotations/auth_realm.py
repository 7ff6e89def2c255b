"""`auth-realm`: the realm of the `WWW-Authenticate: Basic realm="..."` challenge (nginx's auth_basic text)."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-realm"
DEFAULT = ""


def parse(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise Invalid("control characters cannot be sent in a header")
    return value
