"""The one Kubernetes API client of a process, configured in-cluster or from a kubeconfig, and what every
call made with it shares: its RBAC declaration (`ApiCall`), its error (`api_error`, `describe_error`,
`WatchProtocolError`), its connect timeout, and the backoff between retries (`Backoff`).

Precedence: an explicit `--kubeconfig` wins; otherwise a pod (KUBERNETES_SERVICE_HOST set) uses its
service account; otherwise $KUBECONFIG (a path list, as kubectl reads it) or ~/.kube/config.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from proxy.settings import Settings

if TYPE_CHECKING:
    from aiohttp import ClientResponse

DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
USER_AGENT = "pyngress"

# Where an API call may happen: any namespace (a ClusterRole grants it) or only the pod's own
# namespace (a Role there grants it). deploy/ RBAC is checked against these tables.
CLUSTER = "cluster"
POD_NAMESPACE = "pod-namespace"
# Every call's TCP connect to the API server, apart from the call's own total time.
CONNECT_TIMEOUT = 10.0


class ApiCall(NamedTuple):
    """One kind of request a module makes, as RBAC names it; each module lists its own in `API_CALLS`."""

    group: str  # "" = core
    resource: str  # plural, "ingresses/status" for a subresource
    verb: str
    scope: str  # CLUSTER or POD_NAMESPACE


# The API calls of building a client: none (configuration only reads files).
API_CALLS: tuple[ApiCall, ...] = ()


def raw_response(response: object) -> ClientResponse:
    """What a call made with `_preload_content=False` returns: aiohttp's response, not the annotated model."""
    return cast("ClientResponse", response)


def json_body(body: Mapping[str, Any]) -> Any:
    """A request body as plain JSON-shaped data: the client sends a dict as it is, though annotated with models."""
    return body


class ClusterConfigError(Exception):
    """No usable way to reach the API server (missing kubeconfig, context, service account files)."""


def kubeconfig_path(settings: Settings, environ: Mapping[str, str]) -> str:
    return settings.kubeconfig or environ.get("KUBECONFIG") or os.path.expanduser(DEFAULT_KUBECONFIG)


def in_cluster(settings: Settings, environ: Mapping[str, str]) -> bool:
    return not settings.kubeconfig and bool(environ.get("KUBERNETES_SERVICE_HOST"))


async def load_configuration(settings: Settings, *, environ: Mapping[str, str] | None = None,
                             service_account_dir: str = SERVICE_ACCOUNT_DIR) -> Configuration:
    """A client Configuration for this process; raises ClusterConfigError with a readable reason."""
    env = os.environ if environ is None else environ
    configuration = Configuration()
    try:
        if in_cluster(settings, env):
            # Synchronous; re-reads the (rotating, bound) service account token every minute.
            config.load_incluster_config(
                client_configuration=configuration,
                token_filename=os.path.join(service_account_dir, "token"),
                cert_filename=os.path.join(service_account_dir, "ca.crt"),
                environ=env,
            )
        else:
            path = kubeconfig_path(settings, env)
            if not any(os.path.exists(os.path.expanduser(p)) for p in path.split(os.pathsep) if p):
                raise ClusterConfigError(f"no kubeconfig at {path!r} and not running in a pod "
                                         "(use --kubeconfig, $KUBECONFIG, or --manifests for file mode)")
            # persist_config=False: never write refreshed credentials back into the user's file.
            await config.load_kube_config(config_file=path, context=settings.kube_context or None,
                                          client_configuration=configuration, persist_config=False)
    except ConfigException as err:
        raise ClusterConfigError(f"cannot configure the Kubernetes client: {err}") from err
    return configuration


async def create_api_client(settings: Settings, *, environ: Mapping[str, str] | None = None,
                            service_account_dir: str = SERVICE_ACCOUNT_DIR) -> ApiClient:
    """The process's ApiClient (one session, shared by every watch and writer); close it on exit."""
    configuration = await load_configuration(settings, environ=environ, service_account_dir=service_account_dir)
    client = ApiClient(configuration)
    client.user_agent = USER_AGENT
    return client


def api_error(status: int, body: bytes | str | dict[str, Any]) -> ApiException:
    """An ApiException carrying the Status reason and message, whatever shape the error body had."""
    reason = ""
    if isinstance(body, (bytes, str)):
        raw = body
        try:
            body = json.loads(raw)
        except ValueError:
            reason = raw.decode(errors="replace")[:200] if isinstance(raw, bytes) else raw[:200]
    if isinstance(body, dict):
        reason = f"{body.get('reason', '')}: {body.get('message', '')}"
        status = int(body.get("code") or status)
    return ApiException(status=status, reason=reason)


def describe_error(err: BaseException) -> str:
    """A failed call in a log line: the HTTP status and reason of an API error, else the exception."""
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}".strip()
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class WatchProtocolError(Exception):
    """The server sent something that is not a watch event (nor the list or object a call asked for)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter, so replicas reconnecting after an outage spread out."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failures`-th failure in a row: half the step plus up to half again."""
        step = min(self.maximum, self.initial * self.factor ** max(failures - 1, 0))
        return step * (0.5 + rng() / 2)
