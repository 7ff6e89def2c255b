"""API errors as the API server reports them: a `Status` object with an HTTP code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised inside the emulator; the HTTP layer turns it into a Status response."""

    def __init__(self, code: int, reason: str, message: str, *, details: dict[str, Any] | None = None,
                 continue_token: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}
        # An expired paginated LIST answers with a token that continues it inconsistently (metadata.continue).
        self.continue_token = continue_token

    def status(self) -> dict[str, Any]:
        body = status_object(self.code, self.reason, self.message, details=self.details)
        if self.continue_token:
            body["metadata"]["continue"] = self.continue_token
        return body


def status_object(code: int, reason: str, message: str, *, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', details={"name": name, "kind": resource})


def conflict(resource: str, name: str, message: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": {message}',
                    details={"name": name, "kind": resource})
