"""python -m bench WORKLOAD [--seconds N] ...   (WORKLOAD: all, limits, direct, latency, metrics,
group100, group1000, durable, drain, churn, idle; several may be given)

Every chatsrv figure is measured next to its limit in the same run; results go to
bench/results/<timestamp>.json, .md and -*.png. Benchmarks, not tests: nothing here fails on a missed goal.
"""
import argparse
import math
import os
import shlex
import sys

import uvloop

from . import proc, report, runner
from .common import now_stamp


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="+", choices=["all"] + list(runner.WORKLOADS))
    ap.add_argument("--seconds", type=float, default=3.0, help="measured window of each run (default 3)")
    ap.add_argument("--pairs", type=int, default=32, help="sender/receiver pairs for direct (default 32)")
    ap.add_argument("--rate", type=float, default=None,
                    help="offered msg/s for direct/echo/metrics (default: 50%% of the measured direct maximum)")
    ap.add_argument("--rate-max", type=float, default=None, help="skip the closed-loop probe: use this as the maximum")
    ap.add_argument("--fanout-rate", type=float, default=80000.0,
                    help="deliveries/s offered to groups and bare fan-out (default 80000)")
    ap.add_argument("--durable-senders", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    ap.add_argument("--drain-backlog", type=int, default=100_000)
    ap.add_argument("--idle-steps", type=lambda s: [x if x == "max" else int(x) for x in s.split(",")],
                    default=[1000, 5000, 10000, "max"], help="comma-separated; 'max' = file limit less a margin")
    ap.add_argument("--data-root", default=None, help="where the temporary data directories go (default $TMPDIR)")
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--server-dir", default=None,
                    help="checkout whose chatsrv to run (default: this repo; env BENCH_CHATSRV_DIR)")
    ap.add_argument("--out", default=report.RESULTS_DIR)
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def sanitize(x):
    if isinstance(x, float):
        return None if (math.isnan(x) or math.isinf(x)) else x
    if isinstance(x, dict):
        return {str(k): sanitize(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [sanitize(v) for v in x]
    return x


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.server_dir:
        proc.CHATSRV_DIR = os.path.abspath(args.server_dir)
    names = runner.ALL_ORDER if "all" in args.workloads else args.workloads
    gen_core = proc.pin_generator()
    srv_core, _ = proc.cores()
    if gen_core is None:
        print("warning: one core only: server and generator share it; CPU figures include both", file=sys.stderr)
    results = uvloop.run(runner.run(args, names))
    results.update(stamp=now_stamp(), machine=report.machine(), cores=[srv_core, gen_core],
                   command="python -m bench " + " ".join(shlex.quote(a) for a in argv), workloads_run=names)
    results = sanitize(results)
    prefix, md = report.write(results, args.out)
    print(md)
    print(f"written: {prefix}.json, {prefix}.md" + "".join(f", {os.path.join(os.path.dirname(prefix), p)}"
                                                          for p in results.get("plots", [])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
