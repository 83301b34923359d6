"""Observability with real peers: a real Prometheus server (Debian package,
started here on loopback) scrapes a coordinator and 2 workers during a short
training job, and its query API returns non-zero images/s for each rank and a
scaling efficiency in (0, 1] for the job; `promtool check metrics` passes on
every endpoint's exposition; a worker stopped with SIGSTOP is named as stalled
by `dtrain status` and by the stall metric, and after SIGCONT the job goes on."""

import json
import os
import shutil
import signal
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from cluster import free_port, Cluster, wait_for

TRAIN = """
name: obs-train
kind: train
workers: 2
seed: 3
model: resnet20
dataset: {{name: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 4096, test_limit: 512}}
batch_per_worker: 32
epochs: 10
max_steps: {steps}
optimizer: {{name: lars}}
schedule: {{base_lr: 1.0, warmup_epochs: 1}}
allreduce: {{dtype: fp16, timeout_seconds: 120}}
eval_every_epochs: 1
"""



def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def endpoints(c, coord_metrics):
    workers = c.json("workers")
    return [f"127.0.0.1:{coord_metrics}"] + [
        "127.0.0.1:" + w["metrics_address"].rsplit(":", 1)[1] for w in workers]


@unittest.skipUnless(shutil.which("prometheus") and shutil.which("promtool"),
                     "the prometheus package (server and promtool) is not installed")
class Observability(unittest.TestCase):
    def start_cluster(self, **kw):
        self.coord_metrics = free_port()
        return Cluster(workers=2, coordinator_args=["--metrics", f"127.0.0.1:{self.coord_metrics}", *kw.pop("coordinator_args", [])],
                       worker_args=["--metrics", "127.0.0.1:0"], **kw)

    def test_prometheus_scrapes_throughput_per_rank_and_scaling_efficiency(self):
        with self.start_cluster(heartbeat_timeout=30) as c:
            targets = endpoints(c, self.coord_metrics)
            prom_port = free_port()
            cfg = os.path.join(c.dir, "prometheus.yml")
            with open(cfg, "w") as f:
                f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                        # honor_labels: our `job` label (the dtrain job id) stays `job`, as
                        # in deploy/prometheus/prometheus.yml.
                        "scrape_configs:\n  - job_name: dtrain\n    honor_labels: true\n"
                        "    static_configs:\n"
                        f"      - targets: {json.dumps(targets)}\n")
            prom = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                                     f"--storage.tsdb.path={c.dir}/tsdb",
                                     f"--web.listen-address=127.0.0.1:{prom_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                job_id = c.cli("submit", c.write_spec("t.yaml", TRAIN.format(steps=400)),
                               check=True).stdout.strip()
                c.wait_step(job_id, 3, 120)

                # promtool lints every endpoint's exposition during the job.
                for t in targets:
                    text = http_get(f"http://{t}/metrics")
                    self.assertIn("dtrain_", text)
                    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                                       capture_output=True, text=True, timeout=30)
                    self.assertEqual(r.returncode, 0, f"{t}: {r.stdout}{r.stderr}")

                def query(expr):
                    url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
                    try:
                        body = json.loads(http_get(url))
                    except OSError:
                        return []
                    return body.get("data", {}).get("result", []) if body.get("status") == "success" else []

                per_rank = wait_for(
                    lambda: (lambda r: r if len(r) == 2 and all(float(x["value"][1]) > 0 for x in r) else None)(
                        query(f'dtrain_worker_images_per_second{{job="{job_id}"}}')),
                    90, "Prometheus to hold a non-zero images/s for both ranks")
                self.assertEqual(sorted(x["metric"]["rank"] for x in per_rank), ["0", "1"])
                eff = wait_for(
                    lambda: (lambda r: r if r and float(r[0]["value"][1]) > 0 else None)(
                        query(f'dtrain_job_scaling_efficiency_ratio{{job="{job_id}"}}')),
                    60, "Prometheus to hold the job's scaling efficiency")
                value = float(eff[0]["value"][1])
                self.assertGreater(value, 0.0)
                self.assertLessEqual(value, 1.0)
                c.cli("cancel", job_id)
            finally:
                prom.terminate()
                prom.wait(timeout=30)

    def test_stopped_worker_is_named_as_stalled_and_the_job_goes_on_after_sigcont(self):
        with self.start_cluster(heartbeat_timeout=60,
                                coordinator_args=["--stall-timeout", "2"]) as c:
            job_id = c.cli("submit", c.write_spec("s.yaml", TRAIN.format(steps=60)),
                           check=True).stdout.strip()
            job = c.wait_step(job_id, 3, 120)
            victim = next(r for r in job["ranks"] if r["rank"] == 1)
            pid = next(w["pid"] for w in c.json("workers") if w["id"] == victim["worker_id"])
            os.kill(pid, signal.SIGSTOP)
            try:
                stopped = time.monotonic()
                j = wait_for(lambda: (lambda j: j if j.get("stalled") else None)(c.job(job_id)),
                             2 + 5, "the stall inspector to name the stopped rank")
                self.assertLess(time.monotonic() - stopped, 2 + 5)
                self.assertEqual([s["rank"] for s in j["stalled"]], [1])
                self.assertEqual(j["stalled"][0]["host"], victim["host"])
                text = c.cli("status", job_id, check=True).stdout
                self.assertIn("STALLED", text)
                self.assertIn(f"rank 1 (host {victim['host']}", text)
                metrics = http_get(f"http://127.0.0.1:{self.coord_metrics}/metrics")
                self.assertIn(f'dtrain_job_stalled_ranks{{job="{job_id}"}} 1', metrics)
                self.assertRegex(metrics, r'dtrain_rank_stalled_seconds\{[^}]*rank="1"')
                step_at_stop = int(c.job(job_id)["step"])
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda: int(c.job(job_id)["step"]) > step_at_stop + 2, 60, "the job to go on")
            wait_for(lambda: not c.job(job_id).get("stalled"), 30, "the stall to clear")
            done = c.wait_state(job_id, ("SUCCEEDED", "FAILED"), 300)
            self.assertEqual(done["state"], "SUCCEEDED", done.get("reason"))


if __name__ == "__main__":
    unittest.main()
