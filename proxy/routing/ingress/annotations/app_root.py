"""`app-root`: a request for "/" on the host gets 302 to this path (default: none)."""

from proxy.routing.ingress.annotations.values import PATH_WITH_CAPTURE, Invalid, matching

NAME = "app-root"
DEFAULT = ""
DISABLED = "no app-root redirect"


def parse(value: str) -> str:
    matching(value, PATH_WITH_CAPTURE, "a path")
    if not value.startswith("/"):
        raise Invalid(f"{value!r:.80} is not an absolute path (it must start with '/')")
    return value
