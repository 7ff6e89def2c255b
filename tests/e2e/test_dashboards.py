"""deploy/grafana/pyngress.json and deploy/prometheus/rules.yaml only use metrics pyngress exports.

Every PromQL expression of both files (panel targets, template variable queries, recording and
alerting rules) is taken apart by a small tokenizer into the metric names and label names it
refers to. The names must appear in the /metrics of real pyngress processes (file mode after a
200, a 404 and a 503, also with --workers; cluster mode for the watch and leader series), and
the labels must be labels those metrics carry (or target labels Prometheus adds). The dashboard must have the shape
Grafana imports and the rules file the shape Prometheus loads; where `promtool` is installed it
checks the rules, runs their unit tests (deploy/prometheus/rules_test.yaml) and parses every
dashboard expression, and where `prometheus` is installed a real server scrapes pyngress and
every panel must show data.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e_harness import DEADLINE, INGRESS_CLASS, ROOT, ClusterProcesses, Pyngress, eventually, ingress, service

DASHBOARD = ROOT / "deploy" / "grafana" / "pyngress.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yaml"
PROMTOOL = shutil.which("promtool") or ""
PROMETHEUS = shutil.which("prometheus") or ""
HOST = "shop.example.test"

# Labels Prometheus attaches to every scraped series (the exported `namespace`/`service` labels win
# with honor_labels: true, see deploy/prometheus/prometheus.yaml).
TARGET_LABELS = frozenset({"job", "instance"})

# ---------------------------------------------------------------------------------------------- PromQL

AGGREGATIONS = frozenset({
    "avg", "bottomk", "count", "count_values", "group", "limit_ratio", "limitk", "max", "min", "quantile",
    "stddev", "stdvar", "sum", "topk",
})
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time",
    "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "end",
    "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile",
    "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
    "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort",
    "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt", "start", "stddev_over_time", "stdvar_over_time",
    "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
})
# Followed by a parenthesised list of label names.
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = LABEL_LISTS | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
MATCH_OPERATORS = frozenset({"=", "!=", "=~", "!~"})

TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
  | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:\d*(?:ms|[smhdwy]))*)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=,@:(){}\[\]])
""", re.VERBOSE)
CLOSING = {"(": ")", "[": "]", "{": "}"}
SUBQUERY_STEP = re.compile(r":(?:\d+(?:ms|[smhdwy]))*")  # `[1h:5m]`: the name pattern takes ":5m"


class PromQLError(ValueError):
    """An expression the tokenizer cannot account for: unknown function, bad matcher, unbalanced."""


@dataclass
class References:
    """What one or more expressions refer to."""

    metrics: set[str] = field(default_factory=set)
    # (metric, label) for label matchers inside a selector's braces
    selector_labels: set[tuple[str, str]] = field(default_factory=set)
    # label names of by/without/on/ignoring/group_* lists and of label_values()
    grouping_labels: set[str] = field(default_factory=set)

    def update(self, other: References) -> None:
        self.metrics |= other.metrics
        self.selector_labels |= other.selector_labels
        self.grouping_labels |= other.grouping_labels


def tokenize(expr: str) -> list[tuple[str, str]]:
    """(kind, text) pairs without whitespace; anything the grammar does not know is an error."""
    tokens = []
    position = 0
    while position < len(expr):
        found = TOKEN.match(expr, position)
        if found is None:
            raise PromQLError(f"unexpected {expr[position:position + 10]!r} at {position} in {expr!r}")
        position = found.end()
        if found.lastgroup != "space":
            tokens.append((str(found.lastgroup), found.group()))
    return tokens


def references(expr: str) -> References:
    """The metric names and label names one PromQL expression uses.

    Not a parser: enough structure to tell metric names from functions, keywords, label names,
    strings, durations and Grafana variables, and strict about what it cannot place.
    """
    tokens = tokenize(expr)
    found = References()
    stack: list[str] = []
    i = 0
    metric = ""  # the selector whose braces come next
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "name":
            word = text.lower()
            if word in LABEL_LISTS and following == "(":
                i = _label_list(tokens, i + 2, found, expr)
                continue
            if word in KEYWORDS:
                metric = ""
            elif following == "(":
                if text not in FUNCTIONS and text not in AGGREGATIONS:
                    raise PromQLError(f"unknown function {text!r} in {expr!r}")
                metric = ""
            elif following.lower() in ("by", "without"):
                if text not in AGGREGATIONS:
                    raise PromQLError(f"{text!r} is not an aggregation, in {expr!r}")
                metric = ""
            else:
                found.metrics.add(text)
                metric = text
        elif text == "{":
            i = _matchers(tokens, i + 1, metric, found, expr)
            metric = ""
            continue
        elif text == "[":
            depth = 1  # ranges and subqueries: durations, ':' and variables only
            while depth:
                i += 1
                if i == len(tokens):
                    raise PromQLError(f"unclosed '[' in {expr!r}")
                inner_kind, inner = tokens[i]
                depth += {"[": 1, "]": -1}.get(inner, 0)
                if depth and inner_kind not in ("number", "variable") and not SUBQUERY_STEP.fullmatch(inner):
                    raise PromQLError(f"{inner!r} inside a range in {expr!r}")
        elif text == "(":
            stack.append(text)
            metric = ""
        elif text in (")", "}", "]"):
            if not stack or CLOSING[stack.pop()] != text:
                raise PromQLError(f"unbalanced {text!r} in {expr!r}")
        else:
            metric = ""
        i += 1
    if stack:
        raise PromQLError(f"unclosed {stack[-1]!r} in {expr!r}")
    return found


def _label_list(tokens: list[tuple[str, str]], i: int, found: References, expr: str) -> int:
    """Label names up to the closing parenthesis; returns the index after it."""
    expect_name = True
    while i < len(tokens):
        kind, text = tokens[i]
        if text == ")":
            return i + 1
        if expect_name and kind == "name":
            found.grouping_labels.add(text)
        elif expect_name or text != ",":
            raise PromQLError(f"{text!r} in a label list of {expr!r}")
        expect_name = not expect_name
        i += 1
    raise PromQLError(f"unclosed label list in {expr!r}")


def _matchers(tokens: list[tuple[str, str]], i: int, metric: str, found: References, expr: str) -> int:
    """`label op "value"` pairs up to the closing brace; returns the index after it."""
    while i < len(tokens):
        if tokens[i][1] == "}":
            return i + 1
        window = tokens[i:i + 3]
        if (len(window) < 3 or window[0][0] != "name" or window[1][1] not in MATCH_OPERATORS
                or window[2][0] != "string"):
            raise PromQLError(f"bad label matcher at {' '.join(t for _, t in window)!r} in {expr!r}")
        label = window[0][1]
        if label == "__name__":
            found.metrics.add(window[2][1][1:-1])
        elif metric:
            found.selector_labels.add((metric, label))
        else:
            raise PromQLError(f"selector without a metric name in {expr!r}")
        i += 3
        if i < len(tokens) and tokens[i][1] == ",":
            i += 1
        elif i < len(tokens) and tokens[i][1] != "}":
            raise PromQLError(f"expected ',' or '}}' after a matcher in {expr!r}")
    raise PromQLError(f"unclosed '{{' in {expr!r}")


LABEL_VALUES = re.compile(r"label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)", re.DOTALL)
QUERY_RESULT = re.compile(r"query_result\((?P<expr>.*)\)", re.DOTALL)


def variable_references(query: str) -> References:
    """Grafana's Prometheus variable queries: label_values([selector,] label) and query_result(expr)."""
    query = query.strip()
    if found := LABEL_VALUES.fullmatch(query):
        refs = references(found["selector"]) if found["selector"] else References()
        refs.grouping_labels.add(found["label"])
        return refs
    if found := QUERY_RESULT.fullmatch(query):
        return references(found["expr"])
    raise PromQLError(f"variable query this test cannot check: {query!r}")


# ---------------------------------------------------------------------------------------------- the files

def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def load_rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def rules(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in document["groups"]:
        yield from group["rules"]


def recorded_names(document: dict[str, Any]) -> set[str]:
    return {rule["record"] for rule in rules(document) if "record" in rule}


def recorded_labels(document: dict[str, Any]) -> set[str]:
    return {label for rule in rules(document) if "record" in rule for label in rule.get("labels", {})}


def all_references() -> References:
    """Everything both files refer to."""
    dashboard = load_dashboard()
    found = References()
    for expr in dashboard_expressions(dashboard):
        found.update(references(expr))
    for query in variable_queries(dashboard):
        found.update(variable_references(query))
    for rule in rules(load_rules()):
        found.update(references(rule["expr"]))
    return found


@dataclass
class Exported:
    """Sample names and, per sample name, the label names one or more live processes exposed."""

    labels: dict[str, set[str]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)


def unexported(found: References, exported: Exported, *, recorded: set[str]) -> set[str]:
    """Referenced metric names neither exported nor recorded by the rules file."""
    return found.metrics - set(exported.labels) - recorded


def unknown_labels(found: References, exported: Exported, *, extra: AbstractSet[str] = frozenset()) -> set[str]:
    """Label names no exported metric carries (per selector: not on that metric)."""
    every = set().union(*exported.labels.values()) | TARGET_LABELS | extra
    wrong = {f"{metric}{{{label}}}" for metric, label in found.selector_labels
             if metric in exported.labels and label not in exported.labels[metric] | TARGET_LABELS}
    wrong |= {f"{metric}{{{label}}}" for metric, label in found.selector_labels
              if metric not in exported.labels and label not in every}
    return wrong | {f"by ({label})" for label in found.grouping_labels - every}


# ---------------------------------------------------------------------------------------------- the extractor

@pytest.mark.parametrize(("expr", "metrics"), [
    ('sum by (namespace, ingress) (rate(pyngress_requests_total{status=~"5..", ingress!=""}[$__rate_interval]))',
     {"pyngress_requests_total"}),
    ("histogram_quantile(0.95, sum(rate(pyngress_request_duration_seconds_bucket[5m])) by (le))",
     {"pyngress_request_duration_seconds_bucket"}),
    ("rate(process_cpu_seconds_total[1m:10s] offset 5m)\nand on (job, instance) group_left () pyngress_build_info",
     {"process_cpu_seconds_total", "pyngress_build_info"}),
    ('label_replace(a_metric, "ingress", "no route", "ingress", "") or vector(0) > bool 1e3 unless b:c:rate5m',
     {"a_metric", "b:c:rate5m"}),
    ("time() - min without (secret) (x_seconds{job=~\"${job}\"}) < 14 * 86400 > Inf  # a comment naming y_total",
     {"x_seconds"}),
    ('{__name__="by_name_total"} / ignoring (status) group_right (host) other_total @ end()',
     {"by_name_total", "other_total"}),
])
def test_extractor_finds_metric_names_and_nothing_else(expr: str, metrics: set[str]) -> None:
    assert references(expr).metrics == metrics


def test_extractor_separates_selector_labels_from_grouping_labels() -> None:
    found = references('sum by (le, ingress) (rate(m_bucket{namespace=~"$namespace", status!="404"}[5m]))'
                       " * on (job) group_left (version) info_metric")
    assert found.selector_labels == {("m_bucket", "namespace"), ("m_bucket", "status")}
    assert found.grouping_labels == {"le", "ingress", "job", "version"}
    assert variable_references('label_values(pyngress_requests_total{job=~"$job"}, ingress)').grouping_labels == {
        "ingress"}


def test_a_misspelt_metric_or_label_is_reported() -> None:
    exported = Exported()
    exported.add('# TYPE pyngress_requests_total counter\n'
                 'pyngress_requests_total{namespace="a",ingress="b",status="200"} 1\n')
    good = references('sum by (ingress) (rate(pyngress_requests_total{namespace="a"}[5m]))')
    assert unexported(good, exported, recorded=set()) == set()
    assert unknown_labels(good, exported) == set()

    typo = references('sum by (ingress) (rate(pyngress_request_total{namespace="a"}[5m]))')
    assert unexported(typo, exported, recorded=set()) == {"pyngress_request_total"}
    assert unexported(typo, exported, recorded={"pyngress_request_total"}) == set()
    assert unknown_labels(references('sum(pyngress_requests_total{ingres="b"})'), exported) == {
        "pyngress_requests_total{ingres}"}
    assert unknown_labels(references("sum by (namespce) (pyngress_requests_total)"), exported) == {
        "by (namespce)"}


@pytest.mark.parametrize("expr", [
    "sum(rat(pyngress_requests_total[5m]))",          # unknown function
    "pyngress_requests_total by (ingress)",           # `by` after a metric, not an aggregation
    "sum(rate(pyngress_requests_total[5m])",          # unclosed
    "sum(pyngress_requests_total{ingress=b})",        # unquoted value
    "sum(pyngress_requests_total{ingress~\"b\"})",    # no such operator
    "rate(pyngress_requests_total[5m oops])",         # a name inside a range
    'sum by (ingress, "x") (pyngress_requests_total)',
    "sum(pyngress_requests_total) ; drop",
])
def test_extractor_rejects_what_it_cannot_place(expr: str) -> None:
    with pytest.raises(PromQLError):
        references(expr)


# ---------------------------------------------------------------------------------------------- shapes

def test_dashboard_is_a_grafana_dashboard_with_the_ingress_figures() -> None:
    dashboard = load_dashboard()
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["id"] is None

    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "ingress"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "ingress"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    assert "namespace=~\"$namespace\"" in variables["ingress"]["query"]  # ingress list follows the namespace

    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["title"] not in titles, f"two panels named {panel['title']!r}"
        titles.add(panel["title"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert isinstance(target["expr"], str) and target["expr"].strip(), panel["title"]
            assert "$datasource" not in target["expr"]
    assert {"Request volume", "Request volume by status class", "Request volume by ingress", "Active connections",
            "Success rate", "Success rate by ingress", "Requests", "4xx", "5xx", "Request duration",
            "Upstream response time", "Network I/O", "Memory", "CPU"} <= titles

    exprs = "\n".join(dashboard_expressions(dashboard))
    for figure in ("histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
                   "pyngress_request_duration_seconds_sum", "pyngress_request_size_bytes_total",
                   "pyngress_response_size_bytes_total", 'status=~"4.."', 'status=~"5.."',
                   "process_resident_memory_bytes", "process_cpu_seconds_total", "pyngress_active_connections"):
        assert figure in exprs, figure
    # every per-route selector honours the namespace and ingress choice
    for expr in dashboard_expressions(dashboard):
        for selector in re.findall(r"pyngress_(?:requests|request_duration_seconds|upstream_duration_seconds|"
                                   r"request_size_bytes|response_size_bytes|upstream_retries)\w*\{[^}]*\}", expr):
            assert 'namespace=~"$namespace"' in selector and 'ingress=~"$ingress"' in selector, selector


DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RECORD_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+")
ALERT_NAME = re.compile(r"[A-Z][A-Za-z0-9]+")


def test_rules_file_is_a_prometheus_rule_file() -> None:
    document = load_rules()
    assert set(document) == {"groups"} and document["groups"]
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names)), "group names must be unique"
    recorded = recorded_names(document)
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "query_offset"}, group["name"]
        assert isinstance(group["name"], str) and group["name"]
        if "interval" in group:
            assert DURATION.fullmatch(str(group["interval"])), group["interval"]
        assert group["rules"], f"group {group['name']} has no rules"
        earlier: set[str] = set()
        later = {rule["record"] for rule in group["rules"] if "record" in rule}
        for rule in group["rules"]:
            assert set(rule) <= {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert ("record" in rule) != ("alert" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule
            used = references(rule["expr"]).metrics
            # a rule sees results of rules before it in its group, in the same evaluation
            assert not (used & later) - earlier, f"{rule} uses a rule recorded after it"
            for key in ("labels", "annotations"):
                values = rule.get(key, {})
                assert isinstance(values, dict) and all(isinstance(v, str) for v in values.values()), rule
                assert all(LABEL_NAME.fullmatch(k) for k in values), rule
            if "record" in rule:
                assert RECORD_NAME.fullmatch(rule["record"]), f"{rule['record']} is not level:metric:operations"
                assert not {"for", "annotations", "keep_firing_for"} & set(rule), rule
                earlier.add(rule["record"])
            else:
                assert ALERT_NAME.fullmatch(rule["alert"]), rule["alert"]
                assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule
                assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
                if "for" in rule:
                    assert DURATION.fullmatch(str(rule["for"])), rule
    # the figures, per Ingress and overall
    for name in ("requests:rate5m", "requests_4xx:rate5m", "requests_5xx:rate5m", "requests_success:ratio_rate5m",
                 "request_duration_seconds:mean5m", "request_size_bytes:rate5m", "response_size_bytes:rate5m"):
        assert f"namespace_ingress:pyngress_{name}" in recorded and f"job:pyngress_{name}" in recorded, name
    assert {"namespace_ingress_quantile:pyngress_request_duration_seconds:histogram_quantile",
            "job_quantile:pyngress_request_duration_seconds:histogram_quantile",
            "job:pyngress_active_connections:sum", "instance:pyngress_process_cpu_seconds:rate5m",
            "job:pyngress_process_resident_memory_bytes:sum"} <= recorded
    quantiles = {rule["labels"]["quantile"] for rule in rules(document)
                 if rule.get("record") == "namespace_ingress_quantile:pyngress_request_duration_seconds:"
                                          "histogram_quantile"}
    assert quantiles == {"0.5", "0.95", "0.99"}


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed (Debian: apt-get install prometheus)")
def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    for command in (["check", "rules", RULES.name], ["test", "rules", RULES_TEST.name]):
        done = subprocess.run([PROMTOOL, *command], cwd=RULES.parent, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def concrete(expr: str, values: dict[str, str] | None = None) -> str:
    """A dashboard expression with Grafana's variables replaced: intervals by durations, the rest by `.*`."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    values = values or {}
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], ".*"), expr)


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed (Debian: apt-get install prometheus)")
def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    exprs = dashboard_expressions(load_dashboard())
    document = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{n}:expr", "expr": concrete(expr)} for n, expr in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(document))
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


DEPLOYMENT = ROOT / "deploy" / "base" / "deployment.yaml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yaml"
POD_MONITOR = ROOT / "deploy" / "prometheus" / "podmonitor.yaml"
KUBECTL = shutil.which("kubectl") or ""


def pod_template() -> tuple[dict[str, str], set[str]]:
    """The pyngress pods' labels and container port names."""
    template = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]
    ports = {port["name"] for container in template["spec"]["containers"] for port in container["ports"]}
    return template["metadata"]["labels"], ports


def test_scrape_configs_find_the_admin_port_and_keep_the_ingress_labels() -> None:
    labels, ports = pod_template()
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert [(SCRAPE_CONFIG.parent / name).resolve() for name in config["rule_files"]] == [RULES]
    (job,) = config["scrape_configs"]
    assert job["honor_labels"] is True
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert re.fullmatch(keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)],
                        labels["app.kubernetes.io/name"])
    assert keep[("__meta_kubernetes_pod_container_port_name",)] in ports

    monitor = yaml.safe_load(POD_MONITOR.read_text())
    assert monitor["kind"] == "PodMonitor" and monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in ports and endpoint["honorLabels"] is True and endpoint["path"] == "/metrics"


@pytest.mark.skipif(not PROMTOOL, reason="promtool not installed (Debian: apt-get install prometheus)")
def test_promtool_checks_the_scrape_config(tmp_path: Path) -> None:
    done = subprocess.run([PROMTOOL, "check", "config", SCRAPE_CONFIG.name], cwd=SCRAPE_CONFIG.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    if "field kubernetes_sd_configs not found" in done.stdout + done.stderr:
        # Debian's build leaves Kubernetes discovery out: check everything else with a static target
        config = yaml.safe_load(SCRAPE_CONFIG.read_text())
        for job in config["scrape_configs"]:
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["127.0.0.1:10254"]}]
        config["rule_files"] = [str(RULES)]
        (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config))
        done = subprocess.run([PROMTOOL, "check", "config", "prometheus.yaml"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(not KUBECTL, reason="kubectl (with its built-in kustomize) is not installed")
def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    rendered = subprocess.run([KUBECTL, "kustomize", str(DASHBOARD.parent)], capture_output=True, text=True,
                              timeout=60, check=False)
    assert rendered.returncode == 0, rendered.stderr
    (config_map,) = yaml.safe_load_all(rendered.stdout)
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["pyngress.json"]) == load_dashboard()


# ---------------------------------------------------------------------------------------------- live

# How long each pyngress process of these tests may take to print its ports: they start together (file mode, file
# mode with two workers, cluster mode: five interpreters, plus Prometheus), and on a two-core box shared with other
# tests their imports alone took more than the harness's usual 30 s (the log's first line 8 s after exec, its
# manifests loaded 8 s later). The wait is for the process's "listening" line on its stdout, and its exit ends it.
CONCURRENT_START = 120.0


async def serve_traffic(echo_pods: Any, manifests: Any, pyngress: Any, *, workers: int = 0) -> list[Pyngress]:
    """File-mode pyngress processes (one; two with ``workers``: the second runs that many worker
    processes) that have each answered a 200, a 404 (no route) and a 503 (no endpoints)."""
    [pod] = await echo_pods.replicas(("shop-1", "127.0.0.71"))
    manifests.write("class.yaml", INGRESS_CLASS)
    manifests.write("web.yaml", service("web", namespace="shop", pods=[pod]))
    manifests.write("gone.yaml", service("gone", namespace="shop"))
    manifests.write("ingress.yaml", ingress("shop", namespace="shop", host=HOST,
                                            paths=[("/", "Prefix", "web", 80), ("/gone", "Prefix", "gone", 80)]))
    flags = [()] + ([("--workers", str(workers))] if workers else [])
    processes = await asyncio.gather(*(pyngress(manifests.path, *extra, timeout=CONCURRENT_START) for extra in flags))
    for proc in processes:
        status, body = await proc.request("/cart", host=HOST)
        assert status == 200 and body["pod"] == "shop-1"
        assert (await proc.request("/", host="unknown.example.test"))[0] == 404
        assert (await proc.request("/gone", host=HOST))[0] == 503
    return processes


async def exported_by(*processes: Pyngress) -> Exported:
    exported = Exported()
    for proc in processes:
        status, text = await proc.admin_get("/metrics")
        assert status == 200, text
        exported.add(text)
    return exported


async def start_cluster_mode(cluster: ClusterProcesses, kube_api: Any) -> Pyngress:
    """Cluster mode adds watch, leader and status series (nothing to route is needed for that)."""
    kube_api.create(INGRESS_CLASS)
    return await cluster.start("--publish-status-address", "192.0.2.10",
                               env={"POD_NAMESPACE": "pyngress", "POD_NAME": "pyngress-0"}, timeout=CONCURRENT_START)


async def test_every_referenced_metric_and_label_is_exported_by_a_live_pyngress(
        echo_pods, manifests, pyngress, cluster, kube_api) -> None:
    (file_mode, workers), cluster_mode = await asyncio.gather(
        serve_traffic(echo_pods, manifests, pyngress, workers=2), start_cluster_mode(cluster, kube_api))
    exported = await exported_by(file_mode, cluster_mode)
    # the per-route series this test exists for, with the labels the dashboard filters on
    assert {"namespace", "ingress", "status", "method"} <= exported.labels.get("pyngress_requests_total", set()), (
        "no per-route request series in /metrics")

    found = all_references()
    document = load_rules()
    assert found.metrics, "no metric found in the dashboard and rules"
    missing = unexported(found, exported, recorded=recorded_names(document))
    assert not missing, f"referenced but not exported: {sorted(missing)}"
    wrong = unknown_labels(found, exported, extra=recorded_labels(document))
    assert not wrong, f"labels no exported metric has: {sorted(wrong)}"

    # With --workers the control process exports the same figures, summed over its workers. A
    # worker busy past the gather timeout is left out of one scrape: ask again until the deadline.
    cluster_only = set((await exported_by(cluster_mode)).labels) - set((await exported_by(file_mode)).labels)
    missing = {"(not scraped yet)"}
    try:
        async with asyncio.timeout(DEADLINE):
            while missing:
                in_workers = await exported_by(workers)
                missing = unexported(found, in_workers, recorded=recorded_names(document)) - cluster_only
                if missing:
                    await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"referenced but not exported with --workers: {sorted(missing)}") from None

    # legends name labels the series have
    for panel in panels(load_dashboard()):
        for target in panel.get("targets", []):
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in set().union(*exported.labels.values()) | TARGET_LABELS, (panel["title"], label)


# ---------------------------------------------------------------------------------------------- Prometheus

# How long Prometheus may take to listen and be ready (its TSDB, the rules): seconds on a quiet box, much more on a
# loaded one, where a shorter wait (and a restart on a new port) made this test flaky; the process's exit ends the
# wait at once.
STARTUP_DEADLINE = 120.0
# The line Prometheus logs once its web listener is bound (exporter-toolkit, Prometheus 2.x and 3.x):
# `msg="Listening on" address=127.0.0.1:44871`.
LISTENING = re.compile(r'msg="Listening on" address=(\S+)')


def listening_address(log: str) -> str | None:
    """The host:port a Prometheus log says it listens on (None until it does)."""
    found = LISTENING.search(log)
    return found[1] if found else None


def test_the_listening_address_is_read_from_prometheus_logs() -> None:
    assert listening_address('ts=2026-12-03T18:19:45.986Z caller=tls_config.go:232 level=info component=web '
                             'msg="Listening on" address=127.0.0.1:44871\n') == "127.0.0.1:44871"
    assert listening_address('time=2026-12-03T18:19:45.986Z level=INFO source=tls_config.go:347 '
                             'msg="Listening on" address=127.0.0.1:9090\n') == "127.0.0.1:9090"
    assert listening_address('msg="Start listening for connections" address=127.0.0.1:0\n') is None


class PrometheusServer:
    """A real Prometheus scraping given admin ports every second, with the rules file loaded.

    It listens on a port the kernel picks (`127.0.0.1:0`, no port probed in advance that another process could
    take first) and says which in its log, which the test reads; then /-/ready is polled, all within
    STARTUP_DEADLINE."""

    def __init__(self, directory: Path, targets: list[str]) -> None:
        self.directory = directory
        self.targets = targets
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        # the rules as shipped, evaluated every second instead of every 30 s
        document = load_rules()
        for group in document["groups"]:
            group["interval"] = "1s"
        (self.directory / "rules.yaml").write_text(yaml.safe_dump(document))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.directory / "rules.yaml")],
            "scrape_configs": [{"job_name": "pyngress", "honor_labels": True,
                                "static_configs": [{"targets": self.targets}]}],
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = open(self.directory / "prometheus.log", "wb")  # noqa: SIM115  (a local file, once)
        try:
            self.process = await asyncio.create_subprocess_exec(
                PROMETHEUS, f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}", "--web.listen-address=127.0.0.1:0",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        try:
            async with asyncio.timeout(STARTUP_DEADLINE):
                address = await eventually(self._listening, timeout=STARTUP_DEADLINE)
                self.url = f"http://{address}"
                await eventually(self._ready, timeout=STARTUP_DEADLINE)
        except (AssertionError, TimeoutError) as error:
            await self.stop()
            if "prometheus exited" in str(error):
                raise
            raise AssertionError(f"prometheus was not ready within {STARTUP_DEADLINE:.0f} s ({error}):\n"
                                 + self._log()) from None

    def _log(self) -> str:
        return (self.directory / "prometheus.log").read_text(errors="replace")

    def _exited(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise AssertionError("prometheus exited:\n" + self._log())

    def _listening(self) -> str | None:
        self._exited()
        return listening_address(self._log())

    async def _ready(self) -> bool:
        self._exited()
        try:
            async with aiohttp.ClientSession() as session, session.get(
                    self.url + "/-/ready", timeout=aiohttp.ClientTimeout(total=2)) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; a query Prometheus refuses fails the test with its error."""
        async with aiohttp.ClientSession() as session, session.post(
                self.url + "/api/v1/query", data={"query": expr},
                timeout=aiohttp.ClientTimeout(total=DEADLINE)) as response:
            body = await response.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(DEADLINE):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None


@pytest.mark.skipif(not PROMETHEUS, reason="prometheus not installed (Debian: apt-get install prometheus)")
async def test_every_panel_shows_data_in_a_real_prometheus(
        echo_pods, manifests, pyngress, cluster, kube_api, tmp_path: Path) -> None:
    (file_mode,), cluster_mode = await asyncio.gather(serve_traffic(echo_pods, manifests, pyngress),
                                                      start_cluster_mode(cluster, kube_api))
    server = PrometheusServer(tmp_path, [f"127.0.0.1:{proc.ports['admin']}" for proc in (file_mode, cluster_mode)])
    await server.start()
    try:
        # rate() needs two scrapes of every series and the rule groups an evaluation after them;
        # more traffic in between makes the rates non-zero
        await eventually(lambda: server.query("count_over_time(pyngress_requests_total[1m]) >= 2"), timeout=60)
        for _ in range(3):
            assert (await file_mode.request("/cart", host=HOST))[0] == 200
        await eventually(lambda: server.query("namespace_ingress:pyngress_requests:rate5m > 0"), timeout=60)
        await eventually(lambda: server.query("instance:pyngress_process_cpu_seconds:rate5m"), timeout=60)

        dashboard = load_dashboard()
        values = {"job": "pyngress"}
        for query in variable_queries(dashboard):
            found = LABEL_VALUES.fullmatch(query)
            assert found is not None, query
            result = await server.query(f"group by ({found['label']}) ({concrete(found['selector'], values)})")
            assert [r["metric"][found["label"]] for r in result if r["metric"].get(found["label"])], query
        empty = []
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            shown = [await server.query(concrete(target["expr"], values)) for target in panel["targets"]]
            if not any(shown):
                empty.append(panel["title"])
        assert not empty, f"panels without data: {empty}"
        assert (await server.query('namespace_ingress:pyngress_requests_5xx:rate5m{ingress="shop"}'))
        assert (await server.query('namespace_ingress_quantile:pyngress_upstream_duration_seconds:'
                                   'histogram_quantile{ingress="shop", quantile="0.99"}'))
    finally:
        await server.stop()
