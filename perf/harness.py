#!/usr/bin/env python3
"""S3-backed load harness: weft side by side with a peer broker (tansu) on one SeaweedFS.

Started by perf/run.sh, which installs the tools and sets the paths below. It starts
SeaweedFS, weft and tansu on free loopback ports, drives the same librdkafka
`rdkafka_performance` load at each broker, samples object-store request counters and
process CPU around every scenario, writes results.json and the raw files into the run
directory, and renders report.md with perf/report.py. Every process it starts is stopped
by its process id on the way out, also on Ctrl-C.

Uses the Python standard library, plus confluent-kafka's AdminClient (from perf/.venv) to
create topics, since tansu does not create them on first use.

`--flamegraph-seconds N` instead runs only SeaweedFS and weft, drives scenario (b) at weft
and records `perf record` of the agent for N seconds (see perf/flamegraph.sh).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


QUICK = os.environ.get("QUICK", "") not in ("", "0")
CFG = {
    "quick": QUICK,
    "reps": env_int("REPS", 1 if QUICK else 3),
    # (a) and (c): seconds of load at RATE msg/s.
    "latency_seconds": env_int("LATENCY_SECONDS", 6 if QUICK else 15),
    # (b): seconds each throughput run lasts.
    "throughput_seconds": env_int("THROUGHPUT_SECONDS", 8 if QUICK else 20),
    "rate": env_int("RATE", 200),
    "msg_size": env_int("MSG_SIZE", 1024),
    "partitions": env_int("PARTITIONS", 16),
    "producers": env_int("PRODUCERS", 2),
    # (d): megabytes (10^6) written once, then read by each of GROUPS consumer groups.
    "fanout_mb": env_int("FANOUT_MB", 64 if QUICK else 512),
    "groups": env_int("GROUPS", 3),
    # Samples at the start of (a) and (c) left out (connection set-up, metadata).
    "warmup_seconds": env_int("WARMUP_SECONDS", 1),
    "weft_cores": os.environ.get("WEFT_CORES", ""),
    "weft_preset": os.environ.get("WEFT_PRESET", "low-latency"),
    # A second weft agent with `--flush-preset cost`, run at (b) only, for the PUT target.
    "weft_cost": os.environ.get("WEFT_COST", "0" if QUICK else "1") not in ("", "0"),
    # Extra flags of the cost-preset agent, e.g. a larger segment target.
    "weft_cost_args": os.environ.get("WEFT_COST_ARGS", "").split(),
    "scenarios": os.environ.get("SCENARIOS", "a,b,c,d").split(","),
}

WEFT_BIN = os.environ.get("WEFT_BIN", "")
WEED_BIN = os.environ.get("WEED_BIN", "weed")
TANSU_BIN = os.environ.get("TANSU_BIN", "tansu")
RDKPERF = os.environ.get("RDKAFKA_PERF", str(ROOT / "perf/.build/rdkafka_performance"))
RDK_LIB = os.environ.get("RDKAFKA_LIB_DIR", "")  # LD_LIBRARY_PATH for rdkafka_performance

ACCESS_KEY, SECRET_KEY = "weft-perf-key", "weft-perf-secret"

CHILDREN = []  # (name, Popen) of every long-lived process this harness started


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def http_get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def http_put(url, timeout=5.0):
    req = urllib.request.Request(url, method="PUT", data=b"")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status


def spawn(name, argv, log_path, env=None):
    f = open(log_path, "ab")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                         stdin=subprocess.DEVNULL)
    CHILDREN.append((name, p))
    return p


def stop(p, grace=20.0, sig=signal.SIGTERM):
    if p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
    except ProcessLookupError:
        pass


def stop_all():
    for name, p in reversed(CHILDREN):
        if p.poll() is None:
            t = time.time()
            stop(p, grace=30)
            log(f"stopped {name} (pid {p.pid}) in {time.time() - t:.1f}s, exit {p.returncode}")
    CHILDREN.clear()


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping everything")
    stop_all()
    sys.exit(130)


# ---------------------------------------------------------------- measurements

PROM_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """[(name, {label: value}, float)] of every sample in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = PROM_LINE.match(line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), dict(PROM_LABEL.findall(m.group(2) or "")), v))
    return out


def proc_cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return total - idle, total


def children_cpu_seconds():
    """CPU seconds of reaped child processes (the load generators, within a phase)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Store:
    """SeaweedFS (`weed mini`) on free ports, with its Prometheus metrics port."""

    def __init__(self, run_dir):
        self.dir = Path(tempfile.mkdtemp(prefix="weft-perf-weed-"))
        self.s3_port = free_port()
        self.metrics_port = free_port()
        ports = [free_port() for _ in range(11)]
        self.argv = [
            WEED_BIN, "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", "-master.telemetry=false", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-master.port={ports[0]}", f"-master.port.grpc={ports[1]}",
            f"-volume.port={ports[2]}", f"-volume.port.grpc={ports[3]}",
            f"-filer.port={ports[4]}", f"-filer.port.grpc={ports[5]}",
            f"-s3.port={self.s3_port}", f"-s3.port.grpc={ports[6]}",
            f"-admin.port={ports[7]}", f"-admin.port.grpc={ports[8]}",
            f"-debug.port={ports[9]}", f"-metricsPort={self.metrics_port}",
            f"-filer.localSocket={self.dir / 'filer.sock'}",
            f"-s3.localSocket={self.dir / 's3.sock'}",
        ]
        (self.dir / "data").mkdir(parents=True)
        self.proc = spawn("seaweedfs", self.argv, run_dir / "logs/weed.log")
        end = time.time() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("SeaweedFS exited while starting: see logs/weed.log")
            try:
                http_get(f"{self.endpoint}/", timeout=1)
                break
            except Exception:
                if time.time() > end:
                    raise RuntimeError("SeaweedFS S3 did not answer within 90s")
                time.sleep(0.3)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def create_bucket(self, bucket):
        for _ in range(50):
            try:
                if http_put(f"{self.endpoint}/{bucket}") in (200, 204):
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"could not create bucket {bucket}")

    def counters(self):
        """{bucket: {TYPE: count, TYPE+'_err': count}} from SeaweedFS_s3_request_total."""
        try:
            _, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        except Exception as e:
            log(f"SeaweedFS metrics unavailable: {e}")
            return None
        out = {}
        for name, labels, v in parse_prometheus(text):
            if name != "SeaweedFS_s3_request_total":
                continue
            b = out.setdefault(labels.get("bucket", ""), {})
            t = labels.get("type", "?")
            b[t] = b.get(t, 0) + v
            if not labels.get("code", "200").startswith("2"):
                b[t + "_non2xx"] = b.get(t + "_non2xx", 0) + v
        return out

    def object_count(self, bucket):
        """Objects in the bucket (ListObjectsV2, paged)."""
        n, token = 0, None
        while True:
            url = f"{self.endpoint}/{bucket}?list-type=2&max-keys=1000"
            if token:
                url += "&continuation-token=" + urllib.request.quote(token, safe="")
            _, body = http_get(url, timeout=30)
            n += body.count("<Key>")
            m = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", body)
            if "<IsTruncated>true</IsTruncated>" not in body or not m:
                return n
            token = m.group(1)


class Broker:
    name = "?"
    bucket = "?"
    proc = None
    port = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def own_metrics(self):
        return None


class Weft(Broker):
    def __init__(self, name, store, run_dir, preset, bucket, extra_args=()):
        self.name, self.bucket, self.kind = name, bucket, "weft"
        self.port, self.http_port = free_port(), free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix=f"weft-perf-{name}-"))
        store.create_bucket(bucket)
        self.argv = [
            WEFT_BIN, "agent", "--kafka-addr", f"127.0.0.1:{self.port}",
            "--http-addr", f"127.0.0.1:{self.http_port}", "--data-dir", str(self.data_dir),
            "--bucket-url",
            f"s3://{bucket}?endpoint={store.endpoint}&region=us-east-1",
            "--flush-preset", preset, *extra_args,
        ]
        if CFG["weft_cores"]:
            self.argv += ["--cores", CFG["weft_cores"]]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        self.proc = spawn(name, self.argv, run_dir / f"logs/{name}.log", env=env)
        wait_port(self.port, self.proc, name)
        end = time.time() + 30
        while time.time() < end:
            try:
                if http_get(f"http://127.0.0.1:{self.http_port}/readyz")[0] == 200:
                    break
            except Exception:
                pass
            time.sleep(0.2)

    def own_metrics(self):
        """weft's own counters from /metrics, when the agent serves them; else None."""
        try:
            status, text = http_get(f"http://127.0.0.1:{self.http_port}/metrics")
        except Exception:
            return None
        if status != 200:
            return None
        out = {}
        for name, labels, v in parse_prometheus(text):
            if name == "weft_object_store_requests_total":
                key = f"{labels.get('op', '?')}_{labels.get('outcome', '?')}"
                out[key] = out.get(key, 0) + v
            elif name == "process_cpu_seconds_total":
                out["process_cpu_seconds"] = v
        return out or None


class Tansu(Broker):
    def __init__(self, store, run_dir, bucket="tansu"):
        self.name, self.bucket, self.kind = "tansu", bucket, "tansu"
        self.port = free_port()
        store.create_bucket(bucket)
        url = f"tcp://127.0.0.1:{self.port}"
        self.argv = [TANSU_BIN, "broker", "--listener-url", url,
                     "--advertised-listener-url", url, "--storage-engine", f"s3://{bucket}/"]
        self.env_shown = {"AWS_ENDPOINT": store.endpoint, "AWS_ALLOW_HTTP": "true",
                          "AWS_DEFAULT_REGION": "us-east-1"}
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                   AWS_REGION="us-east-1", **self.env_shown)
        self.proc = spawn("tansu", self.argv, run_dir / "logs/tansu.log", env=env)
        wait_port(self.port, self.proc, "tansu")


def create_topic(broker, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                             operation_timeout=30, request_timeout=60)
    fs[topic].result(timeout=90)
    # Wait until Metadata lists every partition.
    end = time.time() + 30
    while time.time() < end:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.5)
    raise RuntimeError(f"topic {topic} not visible with {partitions} partitions on {broker.name}")


def rdk_env():
    env = dict(os.environ)
    if RDK_LIB:
        env["LD_LIBRARY_PATH"] = RDK_LIB + ":" + env.get("LD_LIBRARY_PATH", "")
    return env


def loadgen(argv, out_path, commands, label):
    """Starts one rdkafka_performance; records its command line."""
    commands.append({"label": label, "argv": [Path(argv[0]).name] + argv[1:]})
    f = open(out_path, "wb")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=rdk_env(),
                         stdin=subprocess.DEVNULL)
    p._out_file = f
    p._out_path = out_path
    return p


def finish(p, timeout):
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p, grace=10, sig=signal.SIGINT)
    p._out_file.close()
    return Path(p._out_path).read_text(errors="replace")


PRODUCED = re.compile(
    r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset (-?\d+), "
    r"(\d+) failed\) in (\d+)ms")
CONSUMED = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms")


def last_match(rx, text):
    m = None
    for m in rx.finditer(text):
        pass
    return m


def read_latencies_ms(path, skip):
    try:
        vals = [int(x) / 1000.0 for x in Path(path).read_text().split() if x.strip()]
    except OSError:
        return []
    return vals[skip:]


def percentile(sorted_vals, q):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def lat_stats(vals):
    s = sorted(vals)
    return {"count": len(s), "p50_ms": percentile(s, 0.50), "p99_ms": percentile(s, 0.99),
            "p999_ms": percentile(s, 0.999), "max_ms": s[-1] if s else None,
            "mean_ms": statistics.fmean(s) if s else None}


def after_ack_stats(e2e_path, produce_path, skip):
    """End-to-end minus produce latency, record by record: how long after the producer's
    acknowledgement the consumer had the record. Both files list one partition's records in
    offset order; when their counts differ (the consumer missed the first ones) nothing is
    computed."""
    e2e = read_latencies_ms(e2e_path, 0)
    prod = read_latencies_ms(produce_path, 0)
    if not e2e or len(e2e) != len(prod):
        return None
    return lat_stats([a - b for a, b in zip(e2e, prod)][skip:])


class Sampler:
    """Counters around one measured phase: object-store requests, CPU of agent and store."""

    def __init__(self, store, broker):
        self.store, self.broker = store, broker

    def snap(self):
        c = self.store.counters() or {}
        return {"time": time.time(), "s3": c.get(self.broker.bucket, {}),
                "cpu": proc_cpu_seconds(self.broker.proc.pid),
                "store_cpu": proc_cpu_seconds(self.store.proc.pid),
                "loadgen_cpu": children_cpu_seconds(), "machine": machine_cpu(),
                "own": self.broker.own_metrics()}

    @staticmethod
    def delta(a, b, gbytes):
        def d(x, y):
            return None if x is None or y is None else y - x

        out = {"seconds": b["time"] - a["time"], "gbytes": gbytes,
               "cpu_s": d(a["cpu"], b["cpu"]), "store_cpu_s": d(a["store_cpu"], b["store_cpu"]),
               "loadgen_cpu_s": d(a["loadgen_cpu"], b["loadgen_cpu"])}
        busy, total = (b["machine"][0] - a["machine"][0], b["machine"][1] - a["machine"][1])
        out["machine_busy_pct"] = 100.0 * busy / total if total else None
        keys = set(a["s3"]) | set(b["s3"])
        out["s3"] = {k: b["s3"].get(k, 0) - a["s3"].get(k, 0) for k in sorted(keys)}
        if a["own"] is not None and b["own"] is not None:
            keys = set(a["own"]) | set(b["own"])
            out["own"] = {k: b["own"].get(k, 0) - a["own"].get(k, 0) for k in sorted(keys)}
        else:
            out["own"] = None
        if gbytes:
            out["put_per_gb"] = out["s3"].get("PUT", 0) / gbytes
            out["get_per_gb"] = out["s3"].get("GET", 0) / gbytes
            out["cpu_s_per_gb"] = None if out["cpu_s"] is None else out["cpu_s"] / gbytes
            out["store_cpu_s_per_gb"] = (None if out["store_cpu_s"] is None
                                         else out["store_cpu_s"] / gbytes)
            if out["own"]:
                own = out["own"]
                out["own_put_per_gb"] = sum(v for k, v in own.items()
                                            if k.startswith("put_")) / gbytes
                out["own_get_per_gb"] = sum(v for k, v in own.items()
                                            if k.startswith("get_")) / gbytes
                if "process_cpu_seconds" in own:
                    out["own_cpu_s_per_gb"] = own["process_cpu_seconds"] / gbytes
        return out


# ---------------------------------------------------------------- scenarios

def scenario_a(ctx, broker, rep):
    """Produce latency at low load: 1 partition, RATE msg/s, acks=all, linger 0."""
    topic = f"lat-{rep}-{broker.name}"
    create_topic(broker, topic, 1)
    n = CFG["rate"] * CFG["latency_seconds"]
    lat = ctx.raw / f"a-{broker.name}-r{rep}-produce-latency-us.txt"
    argv = [RDKPERF, "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0",
            "-s", str(CFG["msg_size"]), "-a", "-1", "-r", str(CFG["rate"]), "-c", str(n),
            "-l", "-A", str(lat), "-X", "linger.ms=0"]
    s = Sampler(ctx.store, broker)
    before = s.snap()
    p = loadgen(argv, ctx.raw / f"a-{broker.name}-r{rep}-producer.out", ctx.commands,
                f"(a) {broker.name}")
    out = finish(p, CFG["latency_seconds"] * 4 + 60)
    after = s.snap()
    m = last_match(PRODUCED, out)
    delivered = int(m.group(3)) if m else 0
    vals = read_latencies_ms(lat, CFG["warmup_seconds"] * CFG["rate"])
    res = lat_stats(vals)
    res.update(sent=n, delivered=delivered, failed=int(m.group(5)) if m else None,
               counters=Sampler.delta(before, after, delivered * CFG["msg_size"] / 1e9))
    return res


def run_producers(ctx, broker, topic, tag, seconds=None, count=None):
    """PRODUCERS concurrent producers at full speed into the topic's partitions (acks=all,
    librdkafka's default linger and batching). Stopped with SIGINT after `seconds`, or when
    each has sent `count`. Returns (delivered messages, summed MB/s, outputs)."""
    procs = []
    for i in range(CFG["producers"]):
        argv = [RDKPERF, "-P", "-b", broker.bootstrap, "-t", topic,
                "-s", str(CFG["msg_size"]), "-a", "-1", "-c", str(count or -1)]
        procs.append(loadgen(argv, ctx.raw / f"{tag}-producer{i}.out", ctx.commands,
                             f"{tag.split('-')[0]} {broker.name} producer {i}"))
    if seconds:
        time.sleep(seconds)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
    outs = [finish(p, 120 if seconds else 600) for p in procs]
    delivered, mbps, failed = 0, 0.0, 0
    for out in outs:
        m = last_match(PRODUCED, out)
        if not m:
            continue
        d, ms = int(m.group(3)), int(m.group(6))
        delivered += d
        failed += int(m.group(5))
        if ms > 0:
            mbps += d * CFG["msg_size"] / 1e6 / (ms / 1000.0)
    return delivered, mbps, failed


def scenario_b(ctx, broker, rep):
    """Produce throughput: 16 partitions, PRODUCERS producers at full speed, acks=all."""
    topic = f"thr-{rep}-{broker.name}"
    create_topic(broker, topic, CFG["partitions"])
    s = Sampler(ctx.store, broker)
    before = s.snap()
    delivered, mbps, failed = run_producers(ctx, broker, topic, f"b-{broker.name}-r{rep}",
                                            seconds=CFG["throughput_seconds"])
    after = s.snap()
    gb = delivered * CFG["msg_size"] / 1e9
    return {"mb_per_s": mbps, "delivered": delivered, "failed": failed,
            "counters": Sampler.delta(before, after, gb)}


def scenario_c(ctx, broker, rep):
    """End-to-end latency at low load: a consumer tails the partition while a producer sends
    RATE msg/s with acks=all, linger 0; each record carries its send time."""
    topic = f"e2e-{rep}-{broker.name}"
    create_topic(broker, topic, 1)
    n = CFG["rate"] * CFG["latency_seconds"]
    clat = ctx.raw / f"c-{broker.name}-r{rep}-e2e-latency-us.txt"
    plat = ctx.raw / f"c-{broker.name}-r{rep}-produce-latency-us.txt"
    cons = loadgen([RDKPERF, "-C", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-o", "end",
                    "-l", "-A", str(clat)],
                   ctx.raw / f"c-{broker.name}-r{rep}-consumer.out", ctx.commands,
                   f"(c) {broker.name} consumer")
    time.sleep(3)  # let the consumer connect and find the end offset
    s = Sampler(ctx.store, broker)
    before = s.snap()
    prod = loadgen([RDKPERF, "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0",
                    "-s", str(CFG["msg_size"]), "-a", "-1", "-r", str(CFG["rate"]), "-c", str(n),
                    "-l", "-A", str(plat), "-X", "linger.ms=0"],
                   ctx.raw / f"c-{broker.name}-r{rep}-producer.out", ctx.commands,
                   f"(c) {broker.name} producer")
    pout = finish(prod, CFG["latency_seconds"] * 4 + 60)
    time.sleep(3)  # the last records reach the consumer
    if cons.poll() is None:
        cons.send_signal(signal.SIGINT)
    finish(cons, 30)
    after = s.snap()
    m = last_match(PRODUCED, pout)
    delivered = int(m.group(3)) if m else 0
    skip = CFG["warmup_seconds"] * CFG["rate"]
    res = lat_stats(read_latencies_ms(clat, skip))
    res["produce"] = lat_stats(read_latencies_ms(plat, skip))
    res["after_ack"] = after_ack_stats(clat, plat, skip)
    res.update(sent=n, delivered=delivered,
               counters=Sampler.delta(before, after, 2 * delivered * CFG["msg_size"] / 1e9))
    return res


def scenario_d(ctx, broker, rep):
    """Fan-out: FANOUT_MB written to 16 partitions, then GROUPS consumer groups read all of it
    at the same time. Each group's MB/s counts from its first record (group join excluded)."""
    topic = f"fan-{rep}-{broker.name}"
    create_topic(broker, topic, CFG["partitions"])
    total = CFG["fanout_mb"] * 1_000_000 // CFG["msg_size"]
    per = total // CFG["producers"]
    delivered, _, _ = run_producers(ctx, broker, topic, f"d-{broker.name}-r{rep}-fill",
                                    count=per)
    s = Sampler(ctx.store, broker)
    before = s.snap()
    procs = []
    for g in range(CFG["groups"]):
        argv = [RDKPERF, "-C", "-G", f"fan-{rep}-{broker.name}-g{g}", "-b", broker.bootstrap,
                "-t", topic, "-c", str(delivered), "-X", "auto.offset.reset=earliest"]
        procs.append(loadgen(argv, ctx.raw / f"d-{broker.name}-r{rep}-group{g}.out",
                             ctx.commands, f"(d) {broker.name} group {g}"))
    groups = []
    t0 = time.time()
    for g, p in enumerate(procs):
        out = finish(p, max(10, 300 - (time.time() - t0)))
        m = last_match(CONSUMED, out)
        if m and int(m.group(3)) > 0:
            msgs, nbytes, ms = int(m.group(1)), int(m.group(2)), int(m.group(3))
            groups.append({"msgs": msgs, "bytes": nbytes, "ms": ms,
                           "mb_per_s": nbytes / 1e6 / (ms / 1000.0),
                           "complete": msgs >= delivered})
        else:
            groups.append({"msgs": 0, "bytes": 0, "ms": 0, "mb_per_s": None, "complete": False})
    after = s.snap()
    read_gb = sum(g["bytes"] for g in groups) / 1e9
    rates = [g["mb_per_s"] for g in groups if g["mb_per_s"] is not None]
    return {"written": delivered, "groups": groups,
            "mb_per_s_per_group": statistics.median(rates) if rates else None,
            "mb_per_s_min_group": min(rates) if rates else None,
            "all_complete": all(g["complete"] for g in groups),
            "counters": Sampler.delta(before, after, read_gb)}


SCENARIOS = {"a": scenario_a, "b": scenario_b, "c": scenario_c, "d": scenario_d}


class Ctx:
    pass


def machine_info():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except Exception:
            return ""

    return {
        "uname": sh("uname -a"),
        "kernel": sh("uname -r"),
        "cpu_model": sh("lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1"),
        "cpus": os.cpu_count(),
        "lscpu": sh("lscpu"),
        "mem_total": sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo"),
        "os": sh(". /etc/os-release && echo \"$PRETTY_NAME\""),
        "loadavg_start": sh("cat /proc/loadavg"),
    }


def versions():
    def first(cmd, env=None):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=env)
            return (r.stdout + r.stderr).strip()
        except Exception as e:
            return f"unknown ({e})"

    rdk = first([RDKPERF], env=rdk_env())
    m = re.search(r"librdkafka version (\S+)", rdk)
    weed = first([WEED_BIN, "version"]).splitlines()
    git = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--", "src",
                          "Cargo.toml", "Cargo.lock"], capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src",
                            "Cargo.toml", "Cargo.lock"], capture_output=True,
                           text=True).stdout.strip()
    return {
        "weft_commit": git + (" (with uncommitted changes under src/)" if dirty else ""),
        "repo_head": head,
        "weft_binary": WEFT_BIN,
        "weft_version": first([WEFT_BIN, "--version"]),
        "tansu": first([TANSU_BIN, "--version"]),
        "librdkafka": m.group(1) if m else "unknown",
        "librdkafka_lib": RDK_LIB or "system (Debian librdkafka)",
        "seaweedfs": weed[0] if weed else "unknown",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--flamegraph-seconds", type=int, default=0)
    ap.add_argument("--perf-cmd", default="")
    args = ap.parse_args()
    run_dir = Path(args.run_dir)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "raw").mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    ctx = Ctx()
    ctx.raw = run_dir / "raw"
    ctx.commands = []
    results = {"config": CFG, "machine": machine_info(), "versions": versions(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "runs": [], "errors": []}
    tmpdirs = []
    try:
        log("starting SeaweedFS")
        ctx.store = Store(run_dir)
        tmpdirs.append(ctx.store.dir)
        results["store_cmd"] = ctx.store.argv
        log(f"SeaweedFS S3 on {ctx.store.endpoint}, metrics on :{ctx.store.metrics_port}")

        if args.flamegraph_seconds:
            return flamegraph(ctx, run_dir, args, tmpdirs)

        brokers = [Weft("weft", ctx.store, run_dir, CFG["weft_preset"], "weft")]
        tmpdirs.append(brokers[0].data_dir)
        log(f"weft on {brokers[0].bootstrap} (pid {brokers[0].proc.pid})")
        brokers.append(Tansu(ctx.store, run_dir))
        log(f"tansu on {brokers[1].bootstrap} (pid {brokers[1].proc.pid})")
        extra = []
        if CFG["weft_cost"] and "b" in CFG["scenarios"]:
            w = Weft("weft-cost", ctx.store, run_dir, "cost", "weft-cost",
                     CFG["weft_cost_args"])
            tmpdirs.append(w.data_dir)
            extra.append(w)
            log(f"weft-cost on {w.bootstrap} (pid {w.proc.pid})")
        results["brokers"] = {b.name: {"argv": b.argv, "env": getattr(b, "env_shown", {}),
                                       "bucket": b.bucket} for b in brokers + extra}

        for rep in range(1, CFG["reps"] + 1):
            order = brokers if rep % 2 == 1 else list(reversed(brokers))
            for sc in CFG["scenarios"]:
                targets = order + (extra if sc == "b" else [])
                for b in targets:
                    if b.proc.poll() is not None:
                        results["errors"].append(f"{b.name} is not running (rep {rep}, {sc})")
                        continue
                    log(f"rep {rep}/{CFG['reps']} scenario ({sc}) on {b.name}")
                    t = time.time()
                    try:
                        r = SCENARIOS[sc](ctx, b, rep)
                    except Exception as e:
                        log(f"  failed: {e}")
                        results["errors"].append(f"({sc}) {b.name} rep {rep}: {e}")
                        continue
                    r.update(broker=b.name, scenario=sc, rep=rep, wall_s=time.time() - t)
                    results["runs"].append(r)
                    log("  " + summary_line(r))
                    (run_dir / "results.json").write_text(json.dumps(results, indent=1))

        for b in brokers + extra:
            try:
                results.setdefault("objects_in_bucket", {})[b.name] = \
                    ctx.store.object_count(b.bucket)
            except Exception as e:
                results["errors"].append(f"listing {b.bucket}: {e}")
        # Client connections still open to each broker (there should be none), and how long
        # each broker takes to stop: a graceful stop waits for open connections to drain.
        for b in brokers + extra:
            out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{b.port} )"],
                                 capture_output=True, text=True).stdout
            results.setdefault("client_connections_at_end", {})[b.name] = \
                len(out.strip().splitlines())
        # weft's whole scrape (latency histograms of requests, object store and metadata
        # store, flush reasons, cache hits, connections per shard), for reading afterwards.
        for b in brokers + extra:
            if b.kind == "weft":
                try:
                    status, text = http_get(f"http://127.0.0.1:{b.http_port}/metrics")
                    if status == 200:
                        (ctx.raw / f"{b.name}-metrics-at-end.txt").write_text(text)
                except Exception as e:
                    results["errors"].append(f"scraping {b.name}: {e}")
        for b in brokers + extra:
            t = time.time()
            stop(b.proc, grace=30)
            results.setdefault("stop_seconds", {})[b.name] = round(time.time() - t, 1)
            log(f"stopped {b.name} in {time.time() - t:.1f}s, exit {b.proc.returncode}")
    finally:
        results["commands"] = ctx.commands
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        (run_dir / "results.json").write_text(json.dumps(results, indent=1))
        stop_all()
        for d in tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
        trim_logs(run_dir / "logs")
    return 0


def trim_logs(log_dir, keep=300):
    """Keeps the last `keep` lines of each log, so a run directory stays small."""
    for f in log_dir.glob("*.log"):
        lines = f.read_text(errors="replace").splitlines()
        if len(lines) > keep:
            f.write_text(f"[first {len(lines) - keep} lines left out]\n"
                         + "\n".join(lines[-keep:]) + "\n")


def summary_line(r):
    c = r.get("counters", {})
    sc = r["scenario"]
    if sc in ("a", "c"):
        s = f"p50 {r['p50_ms']} p99 {r['p99_ms']} p999 {r['p999_ms']} ms (n={r['count']})"
    elif sc == "b":
        s = f"{r['mb_per_s']:.1f} MB/s"
    else:
        s = f"{r['mb_per_s_per_group']} MB/s per group, complete={r['all_complete']}"
    return (f"{s}; PUT/GB {c.get('put_per_gb')}, GET/GB {c.get('get_per_gb')}, "
            f"CPU s/GB {c.get('cpu_s_per_gb')}")


def flamegraph(ctx, run_dir, args, tmpdirs):
    """Scenario (b) against weft alone while `perf record` samples the agent."""
    w = Weft("weft", ctx.store, run_dir, CFG["weft_preset"], "weft")
    tmpdirs.append(w.data_dir)
    topic = "flame"
    create_topic(w, topic, CFG["partitions"])
    secs = args.flamegraph_seconds
    rec = subprocess.Popen(args.perf_cmd.replace("{PID}", str(w.proc.pid))
                           .replace("{SECONDS}", str(secs)).split(),
                           stdout=open(run_dir / "logs/perf-record.log", "wb"),
                           stderr=subprocess.STDOUT)
    CHILDREN.append(("perf record", rec))
    time.sleep(1)
    delivered, mbps, failed = run_producers(ctx, w, topic, "flame", seconds=secs + 2)
    rec.wait(timeout=120)
    log(f"load: {mbps:.1f} MB/s, {delivered} records delivered, {failed} failed")
    (run_dir / "load.json").write_text(json.dumps(
        {"mb_per_s": mbps, "delivered": delivered, "failed": failed, "seconds": secs,
         "commands": ctx.commands, "weft_argv": w.argv}, indent=1))
    return rec.returncode


if __name__ == "__main__":
    sys.exit(main())
