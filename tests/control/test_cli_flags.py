"""Command-line flags → Settings: names other tooling relies on, defaults, and clear usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from proxy.cli import build_parser, settings_from_args
from proxy.settings import Settings

# The flag names are a contract with scripts, the Helm chart and the docs: keep them.
CONTRACT_FLAGS = [
    "--manifests", "--http-port", "--https-port", "--admin-port", "--bind", "--ingress-class", "--controller-class",
    "--watch-ingress-without-class", "--upstream-connect-timeout", "--upstream-read-timeout", "--upstream-retries",
    "--client-header-timeout", "--client-keepalive-timeout", "--shutdown-grace-period", "--max-header-bytes",
    "--log-level", "--kubeconfig", "--context", "--watch-namespace", "--publish-service",
    "--publish-status-address", "--election-id", "--default-ssl-certificate", "--access-log", "--no-access-log",
    "--workers", "--election-ttl", "--route-metrics", "--no-route-metrics",
    "--publish-https-port", "--hsts", "--no-hsts", "--hsts-max-age", "--hsts-include-subdomains", "--hsts-preload",
    "--otlp-endpoint", "--trace-sample-ratio", "--trace-trust-incoming", "--no-trace-trust-incoming",
    "--trace-by-default", "--no-trace-by-default", "--otlp-export-interval", "--otlp-timeout",
]


def test_defaults_are_the_settings_defaults(monkeypatch):
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    assert settings_from_args([]) == Settings()


def test_every_flag_reaches_settings(monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "ingress")
    monkeypatch.setenv("POD_NAME", "pyngress-0")
    s = settings_from_args([
        "--manifests", "a", "--manifests", "b/",
        "--http-port", "0", "--https-port", "1443", "--admin-port", "9999", "--bind", "127.0.0.1",
        "--ingress-class", "edge", "--controller-class", "example.com/edge", "--watch-ingress-without-class",
        "--upstream-connect-timeout", "1.5", "--upstream-read-timeout", "7", "--upstream-retries", "0",
        "--client-header-timeout", "3", "--client-keepalive-timeout", "4", "--shutdown-grace-period", "2.5",
        "--max-header-bytes", "1024", "--log-level", "debug", "--no-access-log", "--no-route-metrics",
        "--workers", "3", "--election-ttl", "12.5",
        "--kubeconfig", "/k", "--context", "kind", "--watch-namespace", "shop",
        "--publish-service", "ingress/pyngress", "--publish-status-address", "192.0.2.1,192.0.2.2",
        "--publish-status-address", "lb.example.com", "--election-id", "leader",
        "--default-ssl-certificate", "ingress/default-cert",
        "--publish-https-port", "443", "--no-hsts", "--hsts-max-age", "600", "--no-hsts-include-subdomains",
        "--hsts-preload", "--otlp-endpoint", "http://collector:4318", "--trace-sample-ratio", "0.5",
        "--no-trace-trust-incoming", "--no-trace-by-default", "--otlp-export-interval", "0.5", "--otlp-timeout", "3",
    ])
    assert s == Settings(
        manifests=("a", "b/"), http_port=0, https_port=1443, admin_port=9999, bind="127.0.0.1",
        ingress_class="edge", controller_name="example.com/edge", watch_ingress_without_class=True,
        upstream_connect_timeout=1.5, upstream_read_timeout=7.0, upstream_retries=0,
        client_header_timeout=3.0, client_keepalive_timeout=4.0, shutdown_grace_period=2.5,
        max_header_bytes=1024, log_level="debug", access_log=False, route_metrics=False, workers=3, election_ttl=12.5,
        kubeconfig="/k", kube_context="kind", watch_namespace="shop", publish_service="ingress/pyngress",
        publish_status_address=("192.0.2.1", "192.0.2.2", "lb.example.com"), election_id="leader",
        default_ssl_certificate="ingress/default-cert", pod_namespace="ingress", pod_name="pyngress-0",
        publish_https_port=443, hsts=False, hsts_max_age=600, hsts_include_subdomains=False, hsts_preload=True,
        otlp_endpoint="http://collector:4318", trace_sample_ratio=0.5, trace_trust_incoming=False,
        trace_by_default=False, otlp_export_interval=0.5, otlp_timeout=3.0,
    )


@pytest.mark.parametrize("args", [
    ["--http-port", "70000"],
    ["--admin-port", "-1"],
    ["--upstream-read-timeout", "soon"],
    ["--upstream-connect-timeout", "-1"],
    ["--upstream-retries", "-2"],
    ["--log-level", "loud"],
    ["--publish-service", "no-namespace"],
    ["--default-ssl-certificate", "a/b/c"],
    ["--workers", "0"],
    ["--workers", "many"],
    ["--election-ttl", "0"],
    ["--no-such-flag"],
    ["--trace-sample-ratio", "1.5"],
    ["--trace-sample-ratio", "-0.1"],
    ["--otlp-endpoint", "collector:4318"],
    ["--otlp-endpoint", "grpc://collector:4317"],
    ["--otlp-export-interval", "0"],
])
def test_bad_values_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        settings_from_args(args)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_workers_auto_is_the_usable_core_count():
    import os
    assert settings_from_args(["--workers", "auto"]).workers == len(os.sched_getaffinity(0))


def test_election_ttl_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("PYNGRESS_ELECTION_TTL", "7")
    assert settings_from_args([]).election_ttl == 7.0
    assert settings_from_args(["--election-ttl", "9"]).election_ttl == 9.0
    monkeypatch.setenv("PYNGRESS_ELECTION_TTL", "never")
    with pytest.raises(SystemExit):
        settings_from_args([])


def test_help_explains_every_flag_with_its_default():
    text = build_parser().format_help()
    for flag in CONTRACT_FLAGS:
        assert flag in text, flag
    options = [a for a in build_parser()._actions if a.option_strings and a.dest not in ("help", "version")]
    for action in options:
        assert action.help, action.option_strings
        assert "(default:" in build_parser()._get_formatter()._get_help_string(action), action.option_strings
    assert "(default: 8080)" in text and "(default: pyngress.dev/ingress-controller)" in text


def test_console_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "proxy", "--version"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("pyngress ")
