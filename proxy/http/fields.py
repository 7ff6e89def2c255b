"""Header edits over flat fields, shared by the request and the response head that filters edit.

Fields are kept as the wire writer sends them: ``[name, b": ", value, b"\\r\\n", name, ...]``, pairs at
indexes 4k and 4k + 2, repeated fields kept; names keep their spelling and compare lower-cased.
"""

from __future__ import annotations

_SEP = b": "
_CRLF = b"\r\n"


class FlatFields:
    """`set_header`, `add_header`, `remove_header` and `replace_headers` over `self.fields` (declared by the
    subclass's slots)."""

    __slots__ = ()
    fields: list[bytes]

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

    def replace_headers(self, names: frozenset[bytes], pairs: tuple[tuple[bytes, bytes], ...]) -> None:
        fields = self.fields
        for index in range(len(fields) - 4, -1, -4):
            if fields[index].lower() in names:
                del fields[index : index + 4]
        for name, value in pairs:
            fields += (name, _SEP, value, _CRLF)
