"""`mirror-request-body`: "off" sends mirrored copies without the request's body (default "on";
ingress-nginx reads any other value as "on")."""

NAME = "mirror-request-body"
DEFAULT = True


def parse(value: str) -> bool:
    return value.strip().lower() != "off"
