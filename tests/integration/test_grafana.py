"""deploy/grafana/dtrain.json against the real exporters: every metric name a
dashboard panel queries is exported by a running coordinator or worker.

A real coordinator (--metrics) and 2 workers (--metrics) on loopback run a short
train job (30 steps on a Fashion-MNIST subset, rank 1 paused
with SIGSTOP long enough to be reported stalled); every /metrics endpoint is
scraped while the job runs and after it, and each dtrain_* name found in a panel
expression (or a template variable query) must appear in some scrape. When
Prometheus is installed, a real Prometheus scrapes the same endpoints and every
panel expression must be accepted by its query API (PromQL syntax) and the
worker series must carry the job, rank and host labels the dashboard uses."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from cluster import free_port, BIN, Cluster, wait_for

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
DASHBOARD = os.path.join(REPO, "deploy/grafana/dtrain.json")

SPEC = """
name: it-grafana
kind: train
workers: 2
seed: 7
model: resnet20
dataset: {name: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 1024, test_limit: 256}
batch_per_worker: 16
epochs: 1
max_steps: 30
schedule: {base_lr: 1.0, warmup_epochs: 0.1, decay: poly}
eval_every_epochs: 1
allreduce: {dtype: fp16, bucket_mb: 1}
"""

SAMPLES_OPTIONAL = set()  # names that may be declared without samples
METRIC = re.compile(r"\bdtrain_[a-z_]+\b")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s")



def dashboard_exprs(dash):
    """Every PromQL expression of the dashboard: panel targets (rows included) and
    query variables."""
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query":
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def scrape(address):
    try:
        # Short: a SIGSTOPped worker's endpoint must not starve the others' scrapes.
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=1) as r:
            return r.read().decode()
    except (urllib.error.URLError, OSError):
        return ""


def exported(text):
    """{metric name: [label strings of its samples]} of a text exposition (families
    declared by a # TYPE line with no sample map to [])."""
    names = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):  # a family declared with no sample yet
            names.setdefault(line.split()[2], [])
            continue
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            names.setdefault(m.group(1), []).append(m.group(2) or "")
    return names


class DashboardMatchesExporters(unittest.TestCase):
    def test_every_dashboard_metric_is_exported(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        self.assertTrue(any(v.get("type") == "datasource" and v.get("query") == "prometheus"
                            for v in dash["templating"]["list"]), "a Prometheus datasource variable")
        exprs = dashboard_exprs(dash)
        wanted = set()
        for e in exprs:
            wanted |= set(METRIC.findall(e))
        self.assertGreaterEqual(len(wanted), 15, sorted(wanted))

        help_text = subprocess.run([f"{BIN}/dtrain-coordinator", "--help"], capture_output=True,
                                   text=True).stdout
        if "--metrics" not in help_text:
            self.skipTest("dtrain-coordinator has no --metrics flag yet (Prometheus endpoints)")

        coord_metrics = f"127.0.0.1:{free_port()}"
        worker_metrics = [f"127.0.0.1:{free_port()}" for _ in range(2)]
        with Cluster(workers=0, heartbeat_timeout=30.0,
                     coordinator_args=["--metrics", coord_metrics, "--stall-timeout", "0.5"]) as c:
            for i, addr in enumerate(worker_metrics):
                c.add_worker(i, extra=["--metrics", addr, "--local-workers", "2"])
            c.wait_idle(2)
            endpoints = [coord_metrics, *worker_metrics]
            prom = self._start_prometheus(endpoints)
            # Its first scrape lands seconds after /-/ready: wait for it, so the short job
            # below is surely scraped while it runs.
            wait_for(lambda: self._query(prom, "count(up == 1)").get("data", {}).get("result")
                     and self._query(prom, "count(up == 1)")["data"]["result"][0]["value"][1] == "3",
                     30, "Prometheus to scrape all 3 endpoints once", interval=0.5)

            seen = {}
            texts = {}
            stop = threading.Event()

            def poll():
                while not stop.is_set():
                    for ep in endpoints:
                        t = scrape(ep)
                        if t:
                            texts[ep] = t
                        for name, labels in exported(t).items():
                            seen.setdefault(name, set()).update(labels)
                    stop.wait(0.2)
            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            submit = subprocess.Popen([f"{BIN}/dtrain", "--coordinator", c.address, "submit",
                                       c.write_spec("g.yaml", SPEC), "--wait"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=c.env)
            try:
                # A stalled rank, for the "stalled" panels: once training runs, stop rank 1's
                # process (SIGSTOP) until the coordinator reports it stalled (--stall-timeout
                # 0.5 s, well inside the heartbeat timeout), then let it go on.
                def training():
                    jobs = c.json("list")
                    return jobs and jobs[0]["state"] == "RUNNING" and int(jobs[0]["step"]) >= 3
                wait_for(training, 90, "the job to run 3 steps", interval=0.1)
                victim = c.workers[1]
                os.kill(victim.pid, signal.SIGSTOP)
                try:
                    wait_for(lambda: seen.get("dtrain_rank_stalled_seconds"), 10,
                             "the coordinator to export a stalled rank", interval=0.1)
                finally:
                    os.kill(victim.pid, signal.SIGCONT)
                out, err = submit.communicate(timeout=150)
                self.assertEqual(submit.returncode, 0, err)
                job_id = out.strip()
                time.sleep(1.0)  # one more round after the job
            finally:
                if submit.poll() is None:
                    submit.kill()
                    submit.wait()
                stop.set()
                poller.join(10)
            self.assertEqual(c.job(job_id)["state"], "SUCCEEDED")

            # Every name has samples; a stalled rank's series only exists while one is stalled.
            missing = sorted(n for n in wanted if not seen.get(n) and
                             not (n in SAMPLES_OPTIONAL and n in seen))
            self.assertFalse(missing, f"dashboard metrics no endpoint exported: {missing}\n"
                                      f"exported: {sorted(n for n in seen if n.startswith('dtrain_'))}")
            # The labels the dashboard filters worker series by: host on all of them, job
            # and rank on those its panels select with the $rank variable.
            per_rank = set()
            for e in exprs:
                per_rank |= set(re.findall(r'(dtrain_[a-z_]+)\{[^}]*rank=~', e))
            for name in wanted:
                if name.startswith("dtrain_worker_"):
                    keys = ("job", "rank", "host") if name in per_rank else ("host",)
                    self.assertTrue(any(all(f'{k}="' in ls for k in keys) for ls in seen[name]),
                                    f"{name} needs labels {keys}: {seen[name]}")
            self.assertTrue(any(f'job="{job_id}"' in ls
                                for ls in seen["dtrain_worker_steps_total"]))
            if prom:
                self._check_with_prometheus(prom, exprs, job_id)

    # ---- a real Prometheus (optional): PromQL of every panel is valid --------------------
    def _start_prometheus(self, endpoints):
        exe = shutil.which("prometheus")
        if not exe:
            print("note: prometheus not installed; panel expressions not checked by Prometheus")
            return None
        d = tempfile.mkdtemp(prefix="dtrain-prom-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                    "scrape_configs:\n  - job_name: dtrain\n    honor_labels: true\n"
                    f"    static_configs: [{{targets: {json.dumps(endpoints)}}}]\n")
        port = free_port()
        log = open(os.path.join(d, "prometheus.log"), "wb")
        p = subprocess.Popen([exe, f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
                              f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

        def stop():
            p.kill()
            p.wait(10)
        self.addCleanup(stop)
        base = f"http://127.0.0.1:{port}"

        def ready():
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False
        wait_for(ready, 30, "Prometheus to be ready", interval=0.2)
        return base

    def _query(self, base, expr):
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read() or b"{}") or {"status": "error", "error": str(e)}

    def _check_with_prometheus(self, base, exprs, job_id):
        # The worker series of this job were scraped (through honor_labels, job = dtrain job).
        # (last_over_time: the job's series may have gone stale since it ended)
        q = f'last_over_time(dtrain_worker_steps_total{{job="{job_id}"}}[10m])'
        wait_for(lambda: len(self._query(base, q).get("data", {}).get("result", [])) == 2, 20,
                 f"Prometheus to hold {q} of both ranks", interval=0.5)
        for e in exprs:
            if e.startswith("label_values("):
                m = re.match(r"label_values\((.*),\s*(\w+)\)$", e)
                self.assertTrue(m, e)
                e = m.group(1)
            e = e.replace("$job", ".*").replace("$rank", ".*")
            r = self._query(base, e)
            self.assertEqual(r.get("status"), "success", f"{e}: {r}")


if __name__ == "__main__":
    unittest.main()
