"""`enable-opentelemetry`: spans for this Ingress's requests ("true") or none ("false"); unset: the process's
default (--trace-by-default), and nothing at all without --otlp-endpoint."""

from proxy.routing.ingress.annotations.values import boolean

NAME = "enable-opentelemetry"
DEFAULT: bool | None = None


def parse(value: str) -> bool:
    return boolean(value)
