"""Object metadata the Gateway front end reads: generation (for observedGeneration) and age (for precedence)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# The age of an object without a readable creationTimestamp: after every other.
NEVER = math.inf


def _metadata(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            return metadata
    return {}


def generation(obj: Any) -> int:
    """metadata.generation (0 when absent or unreadable): the observedGeneration of its conditions."""
    value = _metadata(obj).get("generation")
    return value if type(value) is int else 0


def age(obj: Any) -> float:
    """creationTimestamp as seconds since the epoch; NEVER when unreadable (older objects win ties)."""
    stamp = _metadata(obj).get("creationTimestamp")
    if not isinstance(stamp, str):
        return NEVER
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return NEVER
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
