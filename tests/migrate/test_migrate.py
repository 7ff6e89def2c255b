"""`pyngress migrate`: each annotation and ConfigMap key gets the fate the builder and the docs give it, the
catalogue agrees with docs/ingress-nginx.md and with the annotation registry, and the command's output and exit
status say whether behaviour would change (the real command, in a subprocess, on manifest folders)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from proxy.migrate.annotations_table import ROWS
from proxy.migrate.report import (
    BAD_VALUE,
    DIFFERENT,
    FLAG,
    NOT_YET,
    REFUSED_FATE,
    SUPPORTED,
    UNKNOWN,
    make_report,
)
from proxy.routing.ingress.annotations import REFUSED, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
NGINX = "nginx.ingress.kubernetes.io/"


def ingress(name: str, annotations: dict[str, str], *, namespace: str = "web", klass: str = "nginx") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"ingressClassName": klass, "rules": [{"host": f"{name}.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}


def fates(report) -> dict[str, str]:
    return {item.key: item.fate for ingress in report.ingresses for item in ingress.items}


def test_each_kind_of_annotation_gets_its_fate():
    report = make_report([ingress("shop", {
        NGINX + "ssl-redirect": "false",
        NGINX + "rewrite-target": "/$1",
        NGINX + "limit-rate": "100",
        NGINX + "server-snippet": "return 418;",
        NGINX + "canary-weight": "lots",
        NGINX + "no-such-annotation": "1",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",  # not under our prefixes: not listed
    })], None)
    assert fates(report) == {
        NGINX + "ssl-redirect": SUPPORTED,
        NGINX + "rewrite-target": DIFFERENT,
        NGINX + "limit-rate": NOT_YET,
        NGINX + "server-snippet": REFUSED_FATE,
        NGINX + "canary-weight": BAD_VALUE,
        NGINX + "no-such-annotation": UNKNOWN,
    }
    [shop] = report.ingresses
    assert shop.ingress_class == "nginx"
    bad = next(item for item in shop.items if item.fate == BAD_VALUE)
    assert "'lots'" in bad.note  # the builder's own message for that value
    assert report.changes_behaviour
    assert report.counts[SUPPORTED] == 1 and report.counts[NOT_YET] == 1


def test_only_supported_and_unknown_annotations_change_nothing():
    report = make_report([ingress("a", {NGINX + "ssl-redirect": "true", NGINX + "made-up": "x"}),
                          ingress("b", {})], None)
    assert not report.changes_behaviour
    assert report.to_json()["summary"]["changesBehaviour"] is False


def test_our_spelling_wins_over_nginx_spelling():
    report = make_report([ingress("a", {NGINX + "ssl-redirect": "maybe", "pyngress.dev/ssl-redirect": "false"})],
                         None)
    [item] = [i for i in report.ingresses[0].items if i.key.startswith(NGINX)]
    assert item.fate == SUPPORTED and "pyngress.dev/ssl-redirect" in item.note


def test_configmap_keys():
    """Fates come from the reader the proxy uses (routing.global_config)."""
    report = make_report([], ("ingress-nginx", "controller", {
        "hsts-max-age": "600", "use-forwarded-headers": "true", "not-a-key": "x", "proxy-read-timeout": "abc",
        "worker-processes": "4", "gzip-level": "5", "load-balance": "ewma", "custom-http-errors": "404",
        "proxy-body-size": "8m", "use-proxy-protocol": "true", "enable-real-ip": "true",
        "proxy-real-ip-cidr": "10.0.0.0/8", "forwarded-for-header": "CF-Connecting-IP",
        "compute-full-forwarded-for": "true", "worker-shutdown-timeout": "240s"}))
    assert {item.key: item.fate for item in report.configmap.items} == {
        "hsts-max-age": SUPPORTED, "use-forwarded-headers": SUPPORTED, "not-a-key": UNKNOWN,
        "proxy-read-timeout": BAD_VALUE, "worker-processes": FLAG, "gzip-level": NOT_YET, "load-balance": DIFFERENT,
        "custom-http-errors": NOT_YET, "proxy-body-size": SUPPORTED, "use-proxy-protocol": DIFFERENT,
        "enable-real-ip": SUPPORTED, "proxy-real-ip-cidr": SUPPORTED, "forwarded-for-header": SUPPORTED,
        "compute-full-forwarded-for": SUPPORTED, "worker-shutdown-timeout": FLAG}
    notes = {item.key: item.note for item in report.configmap.items}
    assert "--workers" in notes["worker-processes"] and "--shutdown-grace-period" in notes["worker-shutdown-timeout"]
    assert "restart" in notes["use-proxy-protocol"] and "default backend" in notes["custom-http-errors"]
    assert report.changes_behaviour
    fine = make_report([], ("ingress-nginx", "controller", {"hsts": "true", "limit-req-status-code": "429"}))
    assert not fine.changes_behaviour
    missing = make_report([], ("ingress-nginx", "controller", None))
    assert not missing.configmap.found and not missing.changes_behaviour


# ------------------------------------------------------------------------------ the catalogue stays true

ROW = re.compile(r"^\| `(?P<name>[a-z0-9-]+)` \| (?P<status>[^|]+?) \| (?P<note>.*?) ?\|$")


def test_catalogue_is_the_docs_table():
    docs = [(m["name"], m["status"].strip(), m["note"].strip())
            for m in map(ROW.match, (ROOT / "docs" / "ingress-nginx.md").read_text().splitlines()) if m]
    assert docs, "no rows found in docs/ingress-nginx.md"
    assert list(ROWS) == docs, "docs/ingress-nginx.md changed: run scripts/annotation-catalogue"


def test_the_docs_header_counts_its_own_rows():
    """The summary line at the top of docs/ingress-nginx.md says what the table below it holds (merges of
    branches that each moved rows left it wrong more than once)."""
    text = (ROOT / "docs" / "ingress-nginx.md").read_text()
    statuses = [m["status"].strip() for m in map(ROW.match, text.splitlines()) if m]
    counts = {status: statuses.count(status) for status in set(statuses)}
    summary = (f"{counts.get('supported', 0)} supported, {counts.get('supported with a difference', 0)} supported "
               f"with a difference, {counts.get('refused', 0)} refused, {counts.get('not yet', 0)} not yet.")
    assert summary in " ".join(text.split())


def test_catalogue_statuses_agree_with_the_registry():
    honoured = {module.NAME for module in REGISTRY}
    statuses = {name: status for name, status, _ in ROWS}
    assert set(statuses.values()) <= {SUPPORTED, DIFFERENT, REFUSED_FATE, NOT_YET}
    wrong = sorted(name for name, status in statuses.items()
                   if (status in (SUPPORTED, DIFFERENT)) != (name in honoured)
                   or (status == REFUSED_FATE) != (name in REFUSED))
    assert not wrong, f"docs/ingress-nginx.md statuses disagree with the annotation registry: {wrong}"
    # An honoured annotation missing from the table would be reported as unknown.
    assert honoured <= set(statuses), sorted(honoured - set(statuses))


# ------------------------------------------------------------------------------ the command

def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "migrate", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)


def write(folder: Path, name: str, objects: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump_all(objects))


def test_the_command_reports_and_exits_1_when_behaviour_would_change(tmp_path: Path):
    write(tmp_path / "m", "ingresses.yaml", [
        ingress("shop", {NGINX + "limit-rate": "100", NGINX + "ssl-redirect": "false"}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ctl", "namespace": "ingress-nginx"},
         "data": {"hsts": "false"}}])
    done = migrate("--manifests", str(tmp_path / "m"), "--configmap", "ingress-nginx/ctl")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("1 Ingresses;") and "behaviour would change" in lines[1]
    assert any(line.startswith("  ! nginx.ingress.kubernetes.io/limit-rate='100'  [not yet]")
               for line in lines)
    assert any(line.startswith("    nginx.ingress.kubernetes.io/ssl-redirect='false'  [supported]") for line in lines)
    assert any(line.startswith("    hsts='false'  [supported]") for line in lines)

    as_json = migrate("--manifests", str(tmp_path / "m"), "--output", "json")
    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    assert body["summary"]["not yet"] == 1 and body["summary"]["changesBehaviour"] is True
    assert body["ingresses"][0]["annotations"][0]["fate"] == "not yet"
    assert body["configmap"] is None


def test_the_command_exits_0_when_nothing_changes_and_2_on_bad_input(tmp_path: Path):
    write(tmp_path / "ok", "a.yaml", [ingress("a", {NGINX + "ssl-redirect": "true"})])
    done = migrate("--manifests", str(tmp_path / "ok"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing in use would change behaviour" in done.stdout

    missing = migrate("--manifests", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "broken.yaml").write_text("kind: [unclosed")
    broken = migrate("--manifests", str(tmp_path / "broken.yaml"))
    assert broken.returncode == 2 and "broken.yaml" in broken.stderr
    usage = migrate("--manifests", str(tmp_path / "ok"), "--configmap", "no-slash")
    assert usage.returncode == 2 and "NAMESPACE/NAME" in usage.stderr


def test_the_newer_spellings_of_the_source_range_annotations_are_supported():
    """ingress-nginx's `allowlist-source-range` / `limit-allowlist` are read like the docs rows they alias;
    an invalid CIDR is reported as a bad value (the route would answer 503)."""
    report = make_report([ingress("shop", {
        NGINX + "allowlist-source-range": "10.0.0.0/8",
        NGINX + "limit-allowlist": "10.0.0.0/8",
        NGINX + "denylist-source-range": "10.0.0.0/99",
    })], None)
    assert fates(report) == {NGINX + "allowlist-source-range": SUPPORTED, NGINX + "limit-allowlist": DIFFERENT,
                             NGINX + "denylist-source-range": BAD_VALUE}
