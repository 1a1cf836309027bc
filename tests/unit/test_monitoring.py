"""The monitoring that ships: deploy/alerts.yml and the Grafana dashboard's queries, run by
the real `promtool` on synthetic series (no server here; tests/functional/test_metrics.py
checks every metric they name against a live server). Each alert fires on the trouble it
names and stays quiet on a healthy box; the dashboard imports into any Grafana."""
import json
import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "alerts.yml"
DASHBOARD = ROOT / "grafana" / "dashboards" / "chatsrv.json"
RULES = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
SERVER = {"job": "chatsrv", "instance": "a"}


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make test` installs Debian's prometheus package"
    return path


def series(name, values, **labels):
    lab = {**SERVER, **labels}
    return {"series": name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(lab.items())) + "}",
            "values": values}


def firing(name, summary, at, **labels):
    """The alert `name` firing at `at` for the test server, with its summary rendered."""
    rule = RULES[name]
    description = rule["annotations"]["description"].replace("{{ $labels.instance }}", labels.get("instance", "a"))
    return {"eval_time": at, "alertname": name, "exp_alerts": [{
        "exp_labels": {**SERVER, **labels, **rule["labels"]},
        "exp_annotations": {"summary": summary, "description": description}}]}


def quiet(name, at):
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def run_promtool_tests(tmp_path, tests, rule_file=ALERTS):
    spec = {"rule_files": [str(rule_file)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", **t} for t in tests]}
    path = tmp_path / "test.yml"
    path.write_text(json.dumps(spec))          # JSON is YAML
    r = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_rules_are_valid():
    r = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("ChatsrvDown", "ChatsrvStorageNearlyFull", "ChatsrvCommitLatencyHigh", "ChatsrvSlowConsumerDrops",
                 "ChatsrvPushFailing", "ChatsrvWritesFailing"):
        assert name in RULES


def test_server_down_and_never_scraped(tmp_path):
    run_promtool_tests(tmp_path, [
        {"input_series": [series("up", "1x5 0x10")],
         "alert_rule_test": [quiet("ChatsrvDown", "4m"), quiet("ChatsrvDown", "7m"),   # down, not yet for 2m
                             firing("ChatsrvDown", "chatsrv is not answering /metrics", "9m")]},
        {"input_series": [series("up", "1x30")], "alert_rule_test": [quiet("ChatsrvDown", "20m")]},
        # a Prometheus that has no chatsrv target at all
        {"input_series": [{"series": 'up{job="node", instance="b"}', "values": "1x10"}],
         "alert_rule_test": [{"eval_time": "5m", "alertname": "ChatsrvDown", "exp_alerts": [{
             "exp_labels": {"job": "chatsrv", "severity": "critical"},
             "exp_annotations": {"summary": "chatsrv is not answering /metrics",
                                 "description": RULES["ChatsrvDown"]["annotations"]["description"]
                                 .replace("{{ $labels.instance }}", "")}}]}]},
    ])


def test_storage_nearly_full(tmp_path):
    gib = 1 << 30
    run_promtool_tests(tmp_path, [
        {"input_series": [series("chatsrv_lmdb_map_size_bytes", f"{64 * gib}x30"),
                          series("chatsrv_lmdb_map_used_bytes", f"{int(57.6 * gib)}x30")],      # 90%
         "alert_rule_test": [quiet("ChatsrvStorageNearlyFull", "10m"),
                             firing("ChatsrvStorageNearlyFull", "chatsrv's database uses 90% of its map", "20m")]},
        {"input_series": [series("chatsrv_lmdb_map_size_bytes", f"{64 * gib}x30"),
                          series("chatsrv_lmdb_map_used_bytes", f"{32 * gib}x30")],
         "alert_rule_test": [quiet("ChatsrvStorageNearlyFull", "25m")]},
    ])


def test_writes_failing(tmp_path):
    run_promtool_tests(tmp_path, [
        {"input_series": [series("chatsrv_writer_failures_total", "0x10 1 2 2x10")],
         "alert_rule_test": [quiet("ChatsrvWritesFailing", "9m"),
                             firing("ChatsrvWritesFailing", "chatsrv writes are failing", "13m"),
                             quiet("ChatsrvWritesFailing", "20m")]},     # none in the last 5 minutes
    ])


def buckets(per_min):
    """A commit-duration histogram growing by per_min observations a minute in each bucket."""
    acc, out = 0, []
    for le in ("0.001", "0.01", "0.1", "0.25", "+Inf"):
        acc += per_min.get(le, 0)
        out.append(series("chatsrv_writer_commit_seconds_per_batch_bucket", f"0+{acc}x30", le=le))
    return out


def test_commit_latency_high(tmp_path):
    run_promtool_tests(tmp_path, [
        {"input_series": buckets({"0.25": 600}),          # every commit between 100 and 250 ms
         "alert_rule_test": [quiet("ChatsrvCommitLatencyHigh", "8m"),
                             firing("ChatsrvCommitLatencyHigh", "chatsrv commits take 248.5ms (p99)", "20m")]},
        {"input_series": buckets({"0.001": 6000, "0.01": 60}),
         "alert_rule_test": [quiet("ChatsrvCommitLatencyHigh", "20m")]},
    ])


def test_slow_consumer_drops(tmp_path):
    run_promtool_tests(tmp_path, [
        {"input_series": [series("chatsrv_slow_consumers_closed_total", "0+2x30")],
         "alert_rule_test": [firing("ChatsrvSlowConsumerDrops",
                                    "chatsrv closed 30 connections that did not read their output", "20m")]},
        {"input_series": [series("chatsrv_slow_consumers_closed_total", "0+0.2x30")],
         "alert_rule_test": [quiet("ChatsrvSlowConsumerDrops", "20m")]},
    ])


def push(sent, failed, gone=0):
    return [series("chatsrv_push_total", f"0+{sent}x40", outcome="sent"),
            series("chatsrv_push_total", f"0+{failed}x40", outcome="failed"),
            series("chatsrv_push_total", f"0+{gone}x40", outcome="gone"),
            series("chatsrv_push_total", f"0+{sent + failed}x40", outcome="queued")]


def test_push_failing(tmp_path):
    run_promtool_tests(tmp_path, [
        {"input_series": push(sent=60, failed=30, gone=10),
         "alert_rule_test": [quiet("ChatsrvPushFailing", "10m"),
                             firing("ChatsrvPushFailing", "30% of chatsrv's pushes fail", "35m")]},
        {"input_series": push(sent=60, failed=1, gone=5), "alert_rule_test": [quiet("ChatsrvPushFailing", "35m")]},
    ])


def test_file_descriptors(tmp_path):
    run_promtool_tests(tmp_path, [
        {"input_series": [series("process_open_fds", "900x20"), series("process_max_fds", "1000x20")],
         "alert_rule_test": [firing("ChatsrvFileDescriptorsNearlyExhausted",
                                    "chatsrv uses 90% of its open-file limit", "10m")]},
    ])


def dashboard():
    return json.loads(DASHBOARD.read_text())


def test_dashboard_imports_into_any_grafana():
    d = dashboard()
    var = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
    assert len(var) == 1 and var[0]["query"] == "prometheus"
    ref = "${" + var[0]["name"] + "}"
    for p in d["panels"]:
        assert p["datasource"]["uid"] == ref, p["title"]
        assert all(t["datasource"]["uid"] == ref for t in p["targets"]), p["title"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in d["panels"]}
    assert {"Push notifications", "Errors by code", "Memory per connection"} <= titles


def test_dashboard_queries_parse_and_memory_per_connection_never_divides_by_zero(tmp_path):
    d = dashboard()
    exprs = {f"{p['id']}_{t['refId']}": t["expr"] for p in d["panels"] for t in p["targets"]}
    # as recording rules, promtool parses every query
    rules = tmp_path / "dashboard_rules.yml"
    rules.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{k}", "expr": e} for k, e in exprs.items()]}]}))
    r = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    per_conn = next(p for p in d["panels"] if p["title"] == "Memory per connection")["targets"][0]["expr"]
    mib = 1 << 20
    run_promtool_tests(tmp_path, [{
        "input_series": [series("chatsrv_memory_baseline_bytes", f"{60 * mib}x10"),
                         series("process_resident_memory_bytes", f"{60 * mib}x4 {70 * mib}x5"),
                         series("chatsrv_connections", "0x4 1000x5")],
        "promql_expr_test": [
            {"expr": per_conn, "eval_time": "2m", "exp_samples": []},          # no connection: no value
            {"expr": per_conn, "eval_time": "7m",
             "exp_samples": [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(SERVER.items())) + "}",
                              "value": 10 * mib / 1000}]},
        ]}], rule_file=rules)


def test_prometheus_configurations_are_valid(tmp_path):
    # grafana/: for `make run`; deploy/: beside a deployed server, with the alert rules installed
    r = subprocess.run([promtool(), "check", "config", str(ROOT / "grafana" / "prometheus.yml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(ROOT / "deploy" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / "chatsrv-alerts.yml")
    r = subprocess.run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "rules found" in r.stdout, r.stdout + r.stderr
