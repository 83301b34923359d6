#!/usr/bin/python3
"""A simulated multi-host dtrain cluster on one machine (needs root).

K network namespaces ("hosts") hang off one Linux bridge (the "switch") by a
veth pair each; the coordinator runs in the root namespace and listens on the
bridge's address; M dtrain-worker processes run in each namespace, with
UCX_NET_DEVICES=eth0 (the namespace's veth) and a UTS namespace per host
whose host name is hostK, so a worker reports the host it sees (no --host).
Workers of one host reach each other over shared memory (same host name:
UCX error mode NONE, sysv + CMA); workers of two hosts only over TCP through
the shaped veths (other host name: UCX error mode PEER, which excludes shm and
CMA in UCX 1.13; bench/simcluster_bench.py measures it).

Shaping: `tbf` (a token bucket: a real bottleneck that queues, drops beyond
its limit and segments GSO packets larger than its burst) at `rate` on BOTH
egresses of every host link: the namespace side (host -> switch) and the root
side (switch -> host), like a full-duplex NIC port. The delay, when asked for,
is a `netem` child of each tbf with half the one-way host-to-host latency. tbf
rather than netem's own rate: netem is an optional kernel module
(CONFIG_NET_SCH_NETEM) that many kernels, this machine's included, lack,
while tbf is built almost everywhere; a nonzero delay without netem fails
naming the module.

Everything is removed on exit, exception, SIGINT or SIGTERM: processes,
namespaces, veths, bridge (qdiscs go with their devices). Every name is
PREFIX-h<k> or PREFIX-br with PREFIX = dts<pid><letter>, unique per run; state
(owner pid, process ids, UTS files) lives under /run/dtrain-simcluster/PREFIX.
What a SIGKILLed run left behind is swept by the next SimCluster (its owner is
gone) or by `simcluster.py down`.

  /usr/bin/python3 deploy/simcluster.py up --hosts 2 --workers-per-host 2 --rate 1gbit
  /usr/bin/python3 deploy/simcluster.py down [--prefix dts] [--force]
"""

import argparse
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../tests/integration"))
from cluster import Cluster  # noqa: E402  (tests/integration/cluster.py)

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
STATE_ROOT = "/run/dtrain-simcluster"
PREFIX_ROOT = "dts"  # every name this module creates starts with it
NS_DEV = "eth0"      # the veth's name inside each host namespace


def parse_rate(text):
    """'1gbit', '500mbit', '10g' -> bits per second; 'none' or '0' -> None (unshaped)."""
    t = str(text).strip().lower()
    if t in ("", "0", "none", "off"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(?:bit|bps|b)?", t)
    if not m:
        raise ValueError(f"rate {text!r}: expected e.g. 1gbit, 500mbit, 10gbit or none")
    return int(float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)])


def parse_delay(text):
    """'100us', '0.5ms', '0' -> microseconds (float)."""
    t = str(text).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(us|ms|s)?", t)
    if not m:
        raise ValueError(f"delay {text!r}: expected e.g. 100us, 0.5ms or 0")
    return float(m.group(1)) * {None: 1, "us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def sh(*argv, check=True):
    """Runs a command; raises RuntimeError naming it and its stderr when it fails."""
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, argv))}` exited {r.returncode}: {r.stderr.strip()}")
    return r


def qdisc_available(kind):
    """Whether the kernel has qdisc `kind` (tried on a throwaway dummy-free veth)."""
    dev = f"{PREFIX_ROOT}q{os.getpid()}"
    if sh("ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p", check=False).returncode:
        return False
    try:
        args = {"tbf": ["rate", "1gbit", "burst", "64kb", "latency", "10ms"],
                "netem": ["delay", "100us"]}[kind]
        return sh("tc", "qdisc", "add", "dev", dev, "root", kind, *args, check=False).returncode == 0
    finally:
        sh("ip", "link", "del", dev, check=False)


def unavailable_reason():
    """None when a SimCluster can be built here, else why not (for a test's skip)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veths, tc); run as root"
    for tool in ("ip", "tc", "nsenter", "unshare"):
        if not shutil.which(tool):
            return f"`{tool}` is not installed (iproute2 / util-linux)"
    ns = f"{PREFIX_ROOT}probe{os.getpid()}"
    r = sh("ip", "netns", "add", ns, check=False)
    if r.returncode:
        return f"`ip netns add` fails here: {r.stderr.strip()}"
    sh("ip", "netns", "del", ns, check=False)
    if not qdisc_available("tbf"):
        return "the kernel has no tbf qdisc (CONFIG_NET_SCH_TBF) to shape links with"
    return None


class SimCluster(Cluster):
    """`with SimCluster(hosts=2, per_host=2, rate="1gbit") as c:` K namespaces x M
    workers and a coordinator at c.address, all IDLE; c.cli/json/wait_* as in
    tests/integration/cluster.py. c.hosts[k] = {"name", "ns", "ip", "root_dev"}."""

    _count = 0  # instances made by this process: part of their names

    def __init__(self, hosts, per_host, rate="1gbit", delay="0", bin_dir=None,
                 heartbeat_timeout=10.0, coordinator_args=(), worker_args=(), prefix=None,
                 keep_logs=False):
        self.bin = os.path.abspath(bin_dir or os.environ.get("DTRAIN_BIN", os.path.join(REPO, "build/bin")))
        self.rate_bps = parse_rate(rate)
        self.delay_us = parse_delay(delay)
        SimCluster._count += 1
        self.prefix = prefix or f"{PREFIX_ROOT}{os.getpid()}{chr(ord('a') + (SimCluster._count - 1) % 26)}"
        if len(self.prefix) + 4 > 15 or not re.fullmatch(r"[a-z0-9]+", self.prefix):
            raise ValueError(f"prefix {self.prefix!r}: at most 11 letters or digits (interface names)")
        if not 1 <= hosts <= 99:
            raise ValueError(f"hosts {hosts}: allowed 1 .. 99")
        if not 1 <= per_host <= 64:
            raise ValueError(f"workers per host {per_host}: allowed 1 .. 64")
        self.dir = tempfile.mkdtemp(prefix=f"dtrain-sim-{self.prefix}-")
        self.state = os.path.join(STATE_ROOT, self.prefix)
        self.keep_logs = keep_logs
        self.cli_args = []
        self.env = dict(os.environ)
        self.procs, self.workers, self.hosts = [], [], []
        self.worker_args = list(worker_args)
        self.coordinator_args = ["--heartbeat-timeout", str(heartbeat_timeout),
                                 "--heartbeat-interval", "0.5", *coordinator_args]
        self.coordinator_starts, self.port = 0, 0
        self.bridge = f"{self.prefix}-br"
        self._closed = False
        self._old_handlers = {}
        self._trap_signals()
        try:
            if self.delay_us > 0 and not qdisc_available("netem"):
                raise RuntimeError(
                    f"delay {delay}: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM / module "
                    "sch_netem); load it, or use delay 0 (rate shaping with tbf works without it)")
            for e in sweep_stale():
                print(f"simcluster: leftovers of a dead run: {e}", file=sys.stderr)
            os.makedirs(self.state)
            self._write_state("owner", str(os.getpid()))
            self.subnet = self._make_bridge()
            for k in range(hosts):
                self._make_host(k)
            self.start_coordinator(listen_host=f"{self.subnet}.1")
            self._record_pid(self.coordinator)
            self.address = f"{self.subnet}.1:{self.port}"
            for k in range(hosts):
                for m in range(per_host):
                    self.add_host_worker(k, m, per_host)
            self.wait_idle(hosts * per_host, timeout=60)
        except BaseException:
            self.close(failed=True)
            raise

    # ---- network -------------------------------------------------------
    def _write_state(self, name, text, mode="w"):
        with open(os.path.join(self.state, name), mode) as f:
            f.write(text)

    def _make_bridge(self):
        """The switch, with the first free 10.77.X.1/24 (chosen under a lock)."""
        os.makedirs(STATE_ROOT, exist_ok=True)
        with open(os.path.join(STATE_ROOT, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = set(re.findall(r"inet 10\.77\.(\d+)\.", sh("ip", "-4", "-o", "addr").stdout))
            free = [x for x in range(256) if str(x) not in used]
            if not free:
                raise RuntimeError("every 10.77.X.0/24 subnet is in use; run `simcluster.py down`")
            subnet = f"10.77.{free[0]}"
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "addr", "add", f"{subnet}.1/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
        return subnet

    def _shape(self, netns, dev):
        """tbf at the link rate on dev's egress (+ netem for half the delay)."""
        if self.rate_bps is None and self.delay_us <= 0:
            return
        ns = ["-n", netns] if netns else []
        parent = ["root"]
        if self.rate_bps is not None:
            burst = max(64 * 1024, int(self.rate_bps / 8 * 0.002))  # >= 2 ms of traffic (timer HZ)
            sh("tc", *ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate",
               str(self.rate_bps), "burst", str(burst), "latency", "50ms")
            parent = ["parent", "1:1"]
        if self.delay_us > 0:
            sh("tc", *ns, "qdisc", "add", "dev", dev, *parent, "handle", "10:", "netem", "delay",
               f"{self.delay_us / 2:.1f}us", "limit", "100000")

    def _make_host(self, k):
        ns, root_dev, ip = f"{self.prefix}-h{k}", f"{self.prefix}-h{k}", f"{self.subnet}.{10 + k}"
        name = f"host{k}"
        sh("ip", "netns", "add", ns)
        self._write_state("namespaces", ns + "\n", "a")
        sh("ip", "link", "add", root_dev, "type", "veth", "peer", "name", NS_DEV, "netns", ns)
        sh("ip", "link", "set", root_dev, "master", self.bridge, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", NS_DEV)
        sh("ip", "-n", ns, "link", "set", NS_DEV, "up")
        self._shape(ns, NS_DEV)     # host -> switch
        self._shape(None, root_dev)  # switch -> host
        uts = os.path.join(self.state, f"{name}.uts")
        open(uts, "w").close()
        sh("unshare", f"--uts={uts}", "hostname", name)
        self.hosts.append({"name": name, "ns": ns, "ip": ip, "root_dev": root_dev, "uts": uts})

    # ---- processes -----------------------------------------------------
    def _record_pid(self, p):
        self._write_state("pids", f"{p.pid}\n", "a")

    def add_host_worker(self, k, local_rank, local_workers, extra=()):
        """Worker `local_rank` of host k: inside its net + UTS namespaces, /sys remounted
        by `ip netns exec` so UCX lists the namespace's devices."""
        h = self.hosts[k]
        log = open(os.path.join(self.dir, f"{h['name']}-w{local_rank}.log"), "wb")
        argv = ["ip", "netns", "exec", h["ns"], "nsenter", f"--uts={h['uts']}", "--",
                f"{self.bin}/dtrain-worker", "--coordinator", self.address,
                "--local-rank", str(local_rank), "--local-workers", str(local_workers),
                "--blas-threads", "1", "--log-dir", os.path.join(self.dir, f"{h['name']}-w{local_rank}"),
                *self.worker_args, *extra]
        env = dict(self.env, UCX_NET_DEVICES=NS_DEV)
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        p.name = f"{h['name']}-w{local_rank}"
        self.procs.append(p)
        self.workers.append(p)
        self._record_pid(p)
        return p

    def cli(self, *args, timeout=60, check=False):
        r = subprocess.run([f"{self.bin}/dtrain", "--coordinator", self.address, *self.cli_args, *args],
                           capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"dtrain {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def _spawn(self, name, argv):  # the coordinator: Cluster's, with this cluster's binaries
        argv = [os.path.join(self.bin, os.path.basename(argv[0])), *argv[1:]]
        return super()._spawn(name, argv)

    def link_stats(self):
        """{host name: (bytes host -> switch, bytes switch -> host)}: the counters of the
        root-side veth (rx = what the host sent), shaped or not."""
        def count(dev, what):
            with open(f"/sys/class/net/{dev}/statistics/{what}_bytes") as f:
                return int(f.read())
        return {h["name"]: (count(h["root_dev"], "rx"), count(h["root_dev"], "tx")) for h in self.hosts}

    # ---- teardown ------------------------------------------------------
    def _trap_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return
        def on_signal(signum, frame):
            raise SystemExit(128 + signum)  # unwinds through close()
        for s in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[s] = signal.signal(s, on_signal)

    def close(self, failed=False):
        if self._closed:
            return
        self._closed = True
        try:
            super().close()  # SIGKILL every process group we started, wait for them
            errors = teardown(lambda name: name == self.prefix)
            for e in errors:
                print(f"simcluster: cleanup: {e}", file=sys.stderr)
            if failed or self.keep_logs:
                print(f"simcluster: logs kept in {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        finally:
            for s, h in self._old_handlers.items():
                signal.signal(s, h)

    def __exit__(self, *exc):
        if exc[0] is not None and issubclass(exc[0], Exception):  # not Ctrl-C / SIGTERM
            for p in self.procs:
                print(f"----- {p.name} log -----\n{self.log(p.name)[-4000:]}")
        self.close(failed=exc[0] is not None)


def _alive_dtrain(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"dtrain" in f.read()
    except OSError:
        return False


def teardown(owns):
    """Removes every run whose prefix `owns(prefix)` accepts: processes in its namespaces
    or pid files, namespaces (their veths go with them), links, UTS files, state.
    Names are PREFIX-h<k> / PREFIX-br. Never raises; returns what failed."""
    errors = []

    def mine(name):
        return name.startswith(PREFIX_ROOT) and "-" in name and owns(name.split("-", 1)[0])
    for ns in sh("ip", "netns", "list", check=False).stdout.split("\n"):
        ns = ns.split(" ")[0]
        if not mine(ns):
            continue
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        r = sh("ip", "netns", "del", ns, check=False)
        if r.returncode:
            errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
    for line in sh("ip", "-o", "link", "show", check=False).stdout.split("\n"):
        m = re.match(r"\d+: ([^:@ ]+)", line)
        if m and mine(m.group(1)):
            r = sh("ip", "link", "del", m.group(1), check=False)
            if r.returncode and "Cannot find" not in r.stderr:
                errors.append(f"ip link del {m.group(1)}: {r.stderr.strip()}")
    for d in (os.listdir(STATE_ROOT) if os.path.isdir(STATE_ROOT) else []):
        if not (d.startswith(PREFIX_ROOT) and owns(d)):
            continue
        path = os.path.join(STATE_ROOT, d)
        for pid in _read_words(os.path.join(path, "pids")):
            if _alive_dtrain(int(pid)):
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for f in os.listdir(path):
            if f.endswith(".uts"):
                sh("umount", os.path.join(path, f), check=False)
        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(path):
            errors.append(f"cannot remove {path}")
    return errors


def _read_words(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return []


def live_prefixes():
    """Prefixes whose owner process runs (or that have no owner file yet: being built)."""
    live = set()
    for d in (os.listdir(STATE_ROOT) if os.path.isdir(STATE_ROOT) else []):
        owner = _read_words(os.path.join(STATE_ROOT, d, "owner"))
        if not owner or os.path.exists(f"/proc/{owner[0]}"):
            live.add(d)
    return live


def sweep_stale():
    """Removes what runs killed with SIGKILL left behind (their owner is gone)."""
    live = live_prefixes()
    return teardown(lambda prefix: prefix not in live)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the cluster and keep it until Ctrl-C / SIGTERM")
    up.add_argument("--hosts", type=int, default=2)
    up.add_argument("--workers-per-host", type=int, default=2)
    up.add_argument("--rate", default="1gbit", help="per host link and direction, e.g. 1gbit; none: unshaped")
    up.add_argument("--delay", default="0", help="one-way host-to-host latency, e.g. 100us (needs netem)")
    up.add_argument("--bin-dir", default=None, help="dtrain binaries (default build/bin)")
    down = sub.add_parser("down", help="remove what runs named PREFIX* left behind")
    down.add_argument("--prefix", default=PREFIX_ROOT)
    down.add_argument("--force", action="store_true", help="also clusters whose owner process still runs")
    a = ap.parse_args(argv)
    if a.cmd == "down":
        if not a.prefix.startswith(PREFIX_ROOT):
            ap.error(f"--prefix must start with {PREFIX_ROOT!r} (names this tool creates)")
        live = set() if a.force else live_prefixes()
        for d in sorted(p for p in live if p.startswith(a.prefix)):
            print(f"{d}: its owner process still runs; left alone (--force removes it)", file=sys.stderr)
        errors = teardown(lambda p: p.startswith(a.prefix) and p not in live)
        for e in errors:
            print(e, file=sys.stderr)
        return 1 if errors else 0
    reason = unavailable_reason()
    if reason:
        print(f"simcluster: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cluster = SimCluster(a.hosts, a.workers_per_host, a.rate, a.delay, a.bin_dir, keep_logs=True)
    except ValueError as e:  # a bad argument: nothing was created yet
        print(f"simcluster: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a failed setup step: already removed again by close()
        print(f"simcluster: {e}", file=sys.stderr)
        return 1
    with cluster as c:
        print(f"coordinator {c.address}  (export DTRAIN_COORDINATOR={c.address})")
        for h in c.hosts:
            print(f"{h['name']}: {h['ip']}  namespace {h['ns']}  "
                  f"(ip netns exec {h['ns']} nsenter --uts={h['uts']} bash)")
        print(f"links: rate {a.rate}, delay {a.delay}; logs in {c.dir}; Ctrl-C to stop", flush=True)
        try:
            while all(p.poll() is None for p in c.procs):
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        dead = [p.name for p in c.procs if p.poll() is not None]
        if dead:
            print(f"simcluster: {', '.join(dead)} exited; stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
