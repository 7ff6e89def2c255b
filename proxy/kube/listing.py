"""One-shot reads from the API server (no watch): what `pyngress migrate` inspects in a live cluster."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientError
from kubernetes_asyncio.client import ApiClient, CoreV1Api, NetworkingV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from proxy.kube.client import ClusterConfigError, api_error, create_api_client, raw_response
from proxy.settings import Settings

REQUEST_TIMEOUT = 30.0


class ListingError(Exception):
    """The cluster could not be read: no usable kubeconfig, unreachable, or an error answer (one readable line)."""


async def read_ingresses_and_config_map(kubeconfig: str, context: str, namespace: str,
                                        config_map: tuple[str, str] | None
                                        ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The Ingresses (of `namespace`, or all) and the data of `config_map` (None: not named, or not found)."""
    try:
        client = await create_api_client(Settings(kubeconfig=kubeconfig, kube_context=context))
    except ClusterConfigError as error:
        raise ListingError(str(error)) from None
    try:
        async with client:
            ingresses = await list_ingresses(client, namespace)
            data = await read_config_map(client, *config_map) if config_map is not None else None
    except (ApiException, ClientError, OSError, TimeoutError) as error:
        raise ListingError(f"cannot read from the cluster: {error}") from None
    return ingresses, data


async def list_ingresses(client: ApiClient, namespace: str = "") -> list[dict[str, Any]]:
    """Every Ingress (of one namespace, or of all), as raw objects; follows `continue` pages."""
    api = NetworkingV1Api(client)
    found: list[dict[str, Any]] = []
    token = ""
    while True:
        kwargs: dict[str, Any] = {"limit": 500, "_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}
        if token:
            kwargs["_continue"] = token
        if namespace:
            response = await api.list_namespaced_ingress(namespace, **kwargs)
        else:
            response = await api.list_ingress_for_all_namespaces(**kwargs)
        page = await _json(response)
        found.extend(item for item in page.get("items") or () if isinstance(item, dict))
        token = (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return found


async def read_config_map(client: ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """A ConfigMap's `data` ({} when it has none), or None when there is no such ConfigMap."""
    response = await CoreV1Api(client).read_namespaced_config_map(
        name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
    raw = raw_response(response)
    if raw.status == 404:
        raw.release()
        return None
    obj = await _json(response)
    data = obj.get("data")
    return data if isinstance(data, dict) else {}


async def _json(response: object) -> dict[str, Any]:
    raw = raw_response(response)
    try:
        body = await raw.read()
    finally:
        raw.release()
    if raw.status != 200:
        raise api_error(raw.status, body)
    found = json.loads(body)
    if not isinstance(found, dict):
        raise api_error(raw.status, b"not an object")
    return found
