"""/metrics over a real socket: counters move with traffic, the exposition passes
promtool, every metric the Grafana dashboard and the alert rules query exists, and
--metrics-listen serves them on a port of their own."""
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from chatsrv.metrics import build_labels
from conftest import http_get
from harness.net import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "dashboards" / "chatsrv.json"
ALERTS = ROOT / "deploy" / "alerts.yml"
# series Prometheus makes itself, not the server
PROMETHEUS_OWN = {"up"}


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


def labelled(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(rf"^{re.escape(name)}{{{re.escape(want)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_counters_follow_traffic_and_pass_promtool(make_server, login, connect):
    srv = make_server("--map-size", "256MiB", "--rate", "1", "--burst", "20")
    before, headers = scrape(srv.port)
    assert "text/plain" in headers.get("content-type", headers.get("Content-Type", ""))
    a = await login(srv)
    b = await login(srv)
    for i in range(5):
        await a.send_msg(f"m{i}", to=b.user)
    await b.events_of("msg", 5)
    wrong = await connect(srv)
    assert await wrong.err("login", user=a.user, password="not the password", device="x") == "unauthorized"
    assert await b.err("history", conv="g:nosuchgroup") == "forbidden"
    # 30 frames that are not JSON at once: the bucket (20) answers 20 with bad_request, refuses 10
    noisy = await connect(srv)
    for _ in range(30):
        noisy.send_text("not json")
    await noisy._wait(lambda: len(noisy.orphans) == 30 or None, 5.0, "30 answers")
    after, _ = scrape(srv.port)

    def delta(name, **labels):
        return (labelled(after, name, **labels) - labelled(before, name, **labels) if labels
                else value(after, name) - value(before, name))

    assert delta("chatsrv_messages_total") == 5
    assert delta("chatsrv_deliveries_total") == 5
    assert value(after, "chatsrv_connections_authenticated") == 2
    assert value(after, "chatsrv_send_seconds_count") == 5
    assert value(after, "chatsrv_writer_commits_total") >= 1
    assert delta("chatsrv_signups_total") == 2 and delta("chatsrv_users") == 2
    assert delta("chatsrv_logins_total") == 2 and delta("chatsrv_login_failures_total") == 1
    assert delta("chatsrv_ops_total", op="send", code="ok") == 5
    assert delta("chatsrv_ops_total", op="login", code="ok") == 2
    assert delta("chatsrv_ops_total", op="login", code="unauthorized") == 1
    assert delta("chatsrv_ops_total", op="history", code="forbidden") == 1
    assert delta("chatsrv_ops_total", op="invalid", code="bad_request") == 20
    assert delta("chatsrv_rate_limited_total") == 10
    assert value(after, "chatsrv_lmdb_map_size_bytes") == 256 << 20
    assert 0 < value(after, "chatsrv_lmdb_map_used_bytes") <= 256 << 20
    assert labelled(after, "chatsrv_build_info", **build_labels()) == 1
    r = subprocess.run([promtool(), "check", "metrics"], input=after.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def exposed_names(text):
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def queried_names(expr):
    names = set(re.findall(r"\b((?:chatsrv|process)_[a-z_]+)\b", expr))
    return names | {n for n in PROMETHEUS_OWN if re.search(rf"\b{n}\b", expr)}


def test_dashboard_and_alerts_query_only_exposed_metrics(server):
    text, _ = scrape(server.port)
    exposed = exposed_names(text) | PROMETHEUS_OWN
    dash = json.loads(DASHBOARD.read_text())
    exprs = {f"dashboard: {p['title']}": t["expr"] for p in dash["panels"] for t in p["targets"]}
    alerts = re.findall(r"^\s*expr: (?:\|\n)?(.+?)\n\s*(?:for|labels):", ALERTS.read_text(), re.M | re.S)
    assert len(alerts) >= 6
    exprs.update({f"alert {i}": e for i, e in enumerate(alerts)})
    missing = {where: sorted(queried_names(e) - exposed) for where, e in exprs.items() if queried_names(e) - exposed}
    assert not missing, f"queries name metrics the server does not expose: {missing}"
    assert all(queried_names(e) for e in exprs.values())


def test_metrics_on_their_own_port(make_server):
    port = free_port()
    srv = make_server("--metrics-listen", f"127.0.0.1:{port}", "--no-metrics-public")
    assert http_get(srv.port, "/metrics")[0] == 404
    status, body, headers = http_get(port, "/metrics")
    assert status == 200 and "text/plain" in headers["content-type"]
    assert "chatsrv_build_info{" in body.decode()
    assert http_get(port, "/healthz")[:2] == (200, b"ok")
    assert http_get(port, "/")[0] == 404 and http_get(port, "/ws")[0] == 404
