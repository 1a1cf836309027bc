"""/metrics over a real socket: counters move with traffic, the exposition passes
promtool, and every metric the Grafana dashboard queries exists."""
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import http_get

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "dashboards" / "chatsrv.json"


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make test` installs Debian's prometheus package"
    return path


def scrape(port):
    status, body, headers = http_get(port, "/metrics")
    assert status == 200
    return body.decode(), headers


def value(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} not exposed"
    return float(m.group(1))


async def test_counters_follow_traffic_and_pass_promtool(make_server, login):
    srv = make_server()
    before, headers = scrape(srv.port)
    assert "text/plain" in headers.get("content-type", headers.get("Content-Type", ""))
    a = await login(srv)
    b = await login(srv)
    for i in range(5):
        await a.send_msg(f"m{i}", to=b.user)
    await b.events_of("msg", 5)
    after, _ = scrape(srv.port)
    assert value(after, "chatsrv_messages_total") - value(before, "chatsrv_messages_total") == 5
    assert value(after, "chatsrv_deliveries_total") - value(before, "chatsrv_deliveries_total") == 5
    assert value(after, "chatsrv_connections_authenticated") == 2
    assert value(after, "chatsrv_send_seconds_count") == 5
    assert value(after, "chatsrv_writer_commits_total") >= 1
    r = subprocess.run([promtool(), "check", "metrics"], input=after.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_dashboard_queries_only_exposed_metrics(server):
    text, _ = scrape(server.port)
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert exprs
    used = {n for e in exprs for n in re.findall(r"\b((?:chatsrv|process)_[a-z_]+)\b", e)}
    missing = sorted(used - exposed)
    assert not missing, f"dashboard queries metrics the server does not expose: {missing}"
    ds_uid = re.search(r"uid: (\S+)", (ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text())[1]
    assert {p["datasource"]["uid"] for p in dash["panels"]} == {ds_uid}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_prometheus_scrape_config_is_valid():
    r = subprocess.run([promtool(), "check", "config", str(ROOT / "grafana" / "prometheus.yml")],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
