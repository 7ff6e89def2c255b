"""A response head as response filters edit it: the status and the flat header fields."""

from __future__ import annotations

from proxy.http.fields import FlatFields


class ResponseHead(FlatFields):
    """Implements `proxy.routing.request.Response` over flat fields (name, b": ", value, CRLF, ...)."""

    __slots__ = ("status", "fields")

    def __init__(self, status: int, fields: list[bytes]) -> None:
        self.status = status
        self.fields = list(fields)
