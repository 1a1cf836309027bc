"""Prometheus metrics: the core keeps plain integers; this collector reads them at
scrape time, so counting costs the hot path nothing but an increment."""
import bisect
import os
import platform
from importlib import metadata

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Hist:
    """A histogram of plain numbers: observe() is a bisect and two adds, read at scrape time."""

    BOUNDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self, bounds=BOUNDS):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, v):
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v

    def family(self, name, doc):
        acc, buckets = 0, []
        for bound, n in zip(self.bounds + (float("inf"),), self.counts):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        h = HistogramMetricFamily(name, doc)
        h.add_metric([], buckets, self.sum)
        return h


def resident_bytes():
    """This process's resident memory (Linux), or 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def build_labels():
    """What a chatsrv_build_info series names: this build and the parts it runs on."""
    import lmdb

    from . import __version__

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {"version": __version__, "python": platform.python_version(), "picows": version("picows"),
            "uvloop": version("uvloop"), "lmdb": ".".join(map(str, lmdb.version()))}


class Collector:
    """`outcomes`: the domain's replies by (op, "ok" or error code); `send_latency`: its
    histogram of sends."""

    def __init__(self, router, writer, store, outcomes, send_latency):
        self.router = router
        self.writer = writer
        self.store = store
        self.outcomes = outcomes
        self.send_latency = send_latency
        # before any connection: what "memory per connection" subtracts
        self.baseline_rss = resident_bytes()
        self.build = build_labels()

    def collect(self):
        r, w = self.router, self.writer

        def gauge(name, doc, value):
            g = GaugeMetricFamily("chatsrv_" + name, doc)
            g.add_metric([], value)
            return g

        def counter(name, doc, value):
            c = CounterMetricFamily("chatsrv_" + name, doc)
            c.add_metric([], value)
            return c

        info = GaugeMetricFamily("chatsrv_build_info", "The running build: always 1, its versions in labels",
                                 labels=list(self.build))
        info.add_metric(list(self.build.values()), 1)
        yield info
        yield gauge("memory_baseline_bytes", "Resident memory when the server started, before any connection",
                    self.baseline_rss)
        use = self.store.usage()
        yield gauge("lmdb_map_size_bytes", "LMDB map size: the most the database may grow to (map_size)",
                    use["map_size"])
        yield gauge("lmdb_map_used_bytes", "LMDB map in use (up to its last page); writes fail when it is full",
                    use["map_used"])
        yield gauge("users", "Accounts", use["users"])
        yield gauge("connections", "Open WebSocket connections", r.n_open)
        yield gauge("connections_authenticated", "Authenticated connections", r.n_authed)
        yield gauge("users_online", "Users with at least one authenticated connection", len(r.users))
        yield counter("connections_opened", "WebSocket connections accepted", r.n_opened)
        yield counter("requests", "Requests received (after the rate limit)", r.n_requests)
        yield counter("rate_limited", "Requests refused by a connection's rate limit (rate, burst)", r.n_rate_limited)
        outcomes = dict(self.outcomes)
        outcomes[("send", "ok")] = outcomes.get(("send", "ok"), 0) + r.n_send_ok
        ops = CounterMetricFamily("chatsrv_ops", "Requests answered, by op and outcome (ok or the error code)",
                                  labels=["op", "code"])
        for (op, code), n in sorted(outcomes.items()):
            ops.add_metric([op, code], n)
        yield ops
        yield counter("logins", "Successful password logins", outcomes.get(("login", "ok"), 0))
        yield counter("login_failures", "Logins refused for a wrong user name or password",
                      outcomes.get(("login", "unauthorized"), 0))
        yield counter("signups", "Accounts created by sign-up", outcomes.get(("signup", "ok"), 0))
        yield counter("messages", "Messages stored and fanned out", r.n_messages)
        yield counter("deliveries", "Message events sent live to connections", r.n_delivered)
        yield counter("events", "Other events sent to connections", r.n_events)
        yield counter("slow_consumers_closed", "Connections closed for an output backlog over the limit",
                      r.n_slow_closed)
        yield counter("keepalive_dropped", "Connections dropped for not answering a ping in time",
                      r.n_ping_dropped)
        yield counter("fragment_timeouts", "Connections closed for a fragmented message not finished in time",
                      r.n_frag_expired)
        yield counter("fragment_cap_closed", "Connections closed for unfinished messages over the server-wide cap",
                      r.n_frag_refused)
        yield gauge("unfinished_message_bytes", "Bytes of unfinished fragmented messages held", r.frag_bytes)
        yield counter("writer_commits", "LMDB write transactions committed (one per batch)", w.n_commits)
        yield counter("writer_jobs", "Writer jobs applied", w.n_jobs)
        yield counter("writer_failures", "Writer jobs that failed (map or disk full, errors)", w.n_failed)
        yield counter("writer_commit_seconds", "Time spent in write transactions including fsync",
                      w.commit_seconds)
        yield gauge("writer_queue", "Writer jobs waiting", w.queued())
        yield self.send_latency.family(
            "chatsrv_send_seconds", "From a send request to its ok (durable commit included)")
        yield w.commit_latency.family("chatsrv_writer_commit_seconds_per_batch",
                                      "Duration of one write transaction including fsync")


class Metrics:
    """`collectors`: the other parts' own families (push: chatsrv_push_*), each an object
    with prometheus_client's collect()."""

    def __init__(self, router, writer, store, outcomes, send_latency, collectors=()):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(Collector(router, writer, store, outcomes, send_latency))
        for c in collectors:
            self.registry.register(c)
        ProcessCollector(registry=self.registry)

    def render(self):
        return generate_latest(self.registry)
