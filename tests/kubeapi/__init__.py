"""A Kubernetes API server emulator for tests (real HTTP, real kubernetes_asyncio client)."""

from .errors import ApiError
from .resources import RESOURCES, Resource
from .server import KubeApiServer, RequestRecord

__all__ = ["ApiError", "KubeApiServer", "RESOURCES", "RequestRecord", "Resource"]
