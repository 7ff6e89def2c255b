"""A response head as response filters edit it: the status and the flat header fields."""

from __future__ import annotations

_SEP = b": "
_CRLF = b"\r\n"


class ResponseHead:
    """Implements `proxy.routing.request.Response` over flat fields (name, b": ", value, CRLF, ...)."""

    __slots__ = ("status", "fields")

    def __init__(self, status: int, fields: list[bytes]) -> None:
        self.status = status
        self.fields = list(fields)

    def set_header(self, name: bytes, value: bytes) -> None:
        self.remove_header(name)
        self.fields += (name, _SEP, value, _CRLF)

    def add_header(self, name: bytes, value: bytes) -> None:
        self.fields += (name, _SEP, value, _CRLF)

    def remove_header(self, name: bytes) -> None:
        lowered = name.lower()
        fields = self.fields
        for index in range(len(fields) - 4, -1, -4):
            if fields[index].lower() == lowered:
                del fields[index : index + 4]
