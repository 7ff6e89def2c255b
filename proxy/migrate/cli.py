"""`pyngress migrate`: before switching from ingress-nginx, what will and will not carry over.

    pyngress migrate --manifests PATH [--configmap NAMESPACE/NAME] [--output text|json]
    pyngress migrate --kubeconfig FILE [--context NAME] [--namespace NS] [--configmap NAMESPACE/NAME]

Reads the Ingresses (and the ingress-nginx ConfigMap, when named) from manifests or from a live cluster
(list and get only: nothing is written), and prints each annotation and ConfigMap key in use with its fate.
Exit status: 0 when nothing in use would change behaviour, 1 when something would, 2 on a usage error or when
the objects cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from proxy.kube.cache import CONFIG_MAP, INGRESS
from proxy.kube.files import EXTENSIONS, parse_manifest
from proxy.migrate.report import Report, format_text, make_report

EXIT_SAME = 0
EXIT_CHANGES = 1
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyngress migrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifests", action="append", metavar="PATH",
                        help="a manifest file or folder (repeatable), as for `pyngress --manifests`")
    source.add_argument("--kubeconfig", metavar="FILE", help="read from the cluster this kubeconfig names")
    parser.add_argument("--context", default="", help="kubeconfig context (default: the current one)")
    parser.add_argument("--namespace", default="", help="only the Ingresses of this namespace (cluster)")
    parser.add_argument("--configmap", default="", metavar="NAMESPACE/NAME",
                        help="ingress-nginx's ConfigMap (its --configmap flag), "
                             "e.g. ingress-nginx/ingress-nginx-controller")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configmap: tuple[str, str] | None = None
    if args.configmap:
        namespace, slash, name = args.configmap.partition("/")
        if not slash or not namespace or not name:
            parser.error(f"--configmap must be NAMESPACE/NAME, got {args.configmap!r}")
        configmap = (namespace, name)
    if args.manifests:
        try:
            ingresses, configmaps = read_manifests(args.manifests)
        except (OSError, ValueError) as error:
            print(f"pyngress migrate: {error}", file=sys.stderr)
            return EXIT_ERROR
        data = configmaps.get(configmap) if configmap is not None else None
    else:
        from proxy.kube.listing import ListingError, read_ingresses_and_config_map

        try:
            ingresses, data = asyncio.run(
                read_ingresses_and_config_map(args.kubeconfig, args.context, args.namespace, configmap))
        except ListingError as error:
            print(f"pyngress migrate: {error}", file=sys.stderr)
            return EXIT_ERROR
    report = make_report(ingresses, (*configmap, data) if configmap is not None else None)
    sys.stdout.write(render(report, args.output))
    return EXIT_CHANGES if report.changes_behaviour else EXIT_SAME


def render(report: Report, output: str) -> str:
    if output == "json":
        return json.dumps(report.to_json(), indent=2) + "\n"
    return format_text(report)


def read_manifests(paths: Sequence[str]) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Mapping[str, Any]]]:
    """The Ingresses and ConfigMaps (by namespace/name: their data) of manifest files and folders."""
    ingresses: list[dict[str, Any]] = []
    configmaps: dict[tuple[str, str], Mapping[str, Any]] = {}
    for path in _files(paths):
        with open(path, encoding="utf-8") as file:
            text = file.read()
        try:
            objects = parse_manifest(text, source=path, json_only=path.endswith(".json"))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        for kind, obj in objects:
            if kind == INGRESS:
                ingresses.append(obj)
            elif kind == CONFIG_MAP:
                meta = obj["metadata"]
                data = obj.get("data")
                configmaps[(meta.get("namespace") or "default", meta["name"])] = data if isinstance(data, dict) else {}
    return ingresses, configmaps


def _files(paths: Sequence[str]) -> list[str]:
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(folder, n) for n in sorted(names)
                             if n.endswith(EXTENSIONS) and not n.startswith("."))
        elif os.path.exists(path):
            found.append(path)
        else:
            raise OSError(f"manifest path {path} does not exist")
    return found
