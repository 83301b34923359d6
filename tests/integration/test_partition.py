"""A network partition: one worker runs in its own network namespace (made
here with ip netns + a veth pair) and reaches the coordinator over that link.
Mid-job the link is taken down: the coordinator declares the worker dead
within the heartbeat deadline (naming its rank and host), the job restarts on
the remaining worker plus an idle replacement and succeeds, and the cut-off
worker does not hang: its job ends and it exits promptly on SIGTERM.

Needs root (CAP_NET_ADMIN) for ip netns; otherwise the test is skipped with
the reason."""

import os
import re
import signal
import subprocess
import time
import unittest

from cluster import BIN, Cluster, wait_for

HEARTBEAT_TIMEOUT = 3.0

SPEC = """
name: partition
kind: train
workers: 2
seed: 99
model: resnet20
dataset: {name: fashion-mnist, train_limit: 1024, test_limit: 500}
batch_per_worker: 32
epochs: 3
allreduce: {timeout_seconds: 15}
checkpoint: {dir: CKPT, every_steps: 5}
max_restarts: 1
"""


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check)


class Netns:
    """A namespace with one veth link to the host: host side HOST_IP, inside NS_IP."""

    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.name = f"dtrain-p{tag}"
        self.host_if, self.ns_if = f"dth{tag}", f"dtn{tag}"
        octet = os.getpid() % 250 + 1
        self.host_ip, self.ns_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"
        sh("ip", "netns", "add", self.name)
        try:
            sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            sh("ip", "link", "set", self.ns_if, "netns", self.name)
            sh("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            sh("ip", "link", "set", self.host_if, "up")
            self.ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            self.ip("link", "set", self.ns_if, "up")
            self.ip("link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def ip(self, *args):
        return sh("ip", "netns", "exec", self.name, "ip", *args)

    def cut(self):
        sh("ip", "link", "set", self.host_if, "down")

    def close(self):
        sh("ip", "link", "del", self.host_if, check=False)
        sh("ip", "netns", "del", self.name, check=False)


class NetworkPartition(unittest.TestCase):
    def setUp(self):
        try:
            self.ns = Netns()
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            err = getattr(e, "stderr", "") or str(e)
            self.skipTest(f"cannot make a network namespace here (needs root and iproute2): {err.strip()}")

    def tearDown(self):
        self.ns.close()

    def test_cut_link_is_detected_and_job_restarts_without_hangs(self):
        ns = self.ns
        with Cluster(heartbeat_timeout=HEARTBEAT_TIMEOUT) as c:
            # The coordinator serves on every interface so the namespace reaches it.
            os.kill(c.coordinator.pid, signal.SIGKILL)
            c.coordinator.wait(10)
            c.start_coordinator(listen_host="0.0.0.0")
            c.add_worker(0)
            log = open(os.path.join(c.dir, "worker-ns.log"), "wb")
            cut_off = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, f"{BIN}/dtrain-worker", "--coordinator",
                 f"{ns.host_ip}:{c.port}", "--local-rank", "1", "--blas-threads", "1"],
                stdout=log, stderr=subprocess.STDOUT, env=c.env, start_new_session=True)
            log.close()
            c.procs.append(cut_off)
            c.wait_idle(2)
            job_id = c.cli("submit", c.write_spec(
                "p.yaml", SPEC.replace("CKPT", os.path.join(c.dir, "ckpt"))), check=True).stdout.strip()
            job = c.wait_step(job_id, 7, 300)
            ns_worker = next(w for w in c.json("workers") if w["pid"] == cut_off.pid)
            rank = next(x["rank"] for x in job["ranks"] if x["worker_id"] == ns_worker["id"])
            c.add_worker(2)  # the replacement, idle until the restart
            c.wait_idle(1)

            ns.cut()
            cut_at = time.monotonic()
            restarted = wait_for(lambda: (lambda j: j if j.get("restarts", 0) >= 1 else None)(c.job(job_id)),
                                 HEARTBEAT_TIMEOUT + 5, "the coordinator to notice the partition")
            detected = time.monotonic() - cut_at
            self.assertLess(detected, HEARTBEAT_TIMEOUT + 5)
            events = "\n".join(restarted.get("events", []))
            self.assertIn(f"lost rank {rank}", events)
            self.assertIn(ns_worker["id"], events)

            done = c.wait_state(job_id, ("SUCCEEDED", "FAILED"), 600)
            self.assertEqual(done["state"], "SUCCEEDED", done.get("reason"))
            self.assertNotIn(ns_worker["id"], [x["worker_id"] for x in done["ranks"]])
            states = {w["id"]: w["state"] for w in c.json("workers")}
            self.assertEqual(states[ns_worker["id"]], "DEAD")

            # The cut-off worker is not hung: its job ended (its collectives
            # have deadlines) and it stops promptly when told to.
            def wlog():
                with open(os.path.join(c.dir, "worker-ns.log"), errors="replace") as f:
                    return f.read()
            wait_for(lambda: re.search(rf"job {job_id}: rank \d+ (failed|stopped)", wlog()), 60,
                     "the cut-off worker's job to end")
            cut_off.send_signal(signal.SIGTERM)
            try:
                cut_off.wait(15)
            except subprocess.TimeoutExpired:
                self.fail("the cut-off worker did not exit within 15 s of SIGTERM:\n" + wlog()[-3000:])
            print(f"partition detected in {detected:.1f} s (heartbeat deadline {HEARTBEAT_TIMEOUT} s)")


if __name__ == "__main__":
    unittest.main()
