"""Worker ids and the worker list across failures (real processes on loopback).

* Two workers on one host claiming the same local rank: the coordinator warns,
  naming the host, the rank and both worker ids.
* A worker killed for good shows DEAD in `dtrain workers`, and is dropped from
  the list after --dead-worker-seconds (short here; the default is 600).
* The coordinator killed with SIGKILL and started again on the same port and
  --state-dir: the workers reconnect on their own and come back IDLE under the
  SAME ids (no new id appears), and a job then runs on them.
* --dead-worker-seconds 0 is refused at start: exit 2, naming the flag.
"""

import os
import signal
import subprocess
import tempfile
import time
import unittest

from cluster import BIN, Cluster, wait_for

GRACE = 2.0  # --dead-worker-seconds in the first coordinator

BENCH = """
name: after-restart
kind: allreduce-bench
workers: 2
bench: {min_bytes: 1024, max_bytes: 4096, iterations: 2}
"""


def ids_by_state(c):
    return {w["id"]: w["state"] for w in c.json("workers")}


class WorkerIds(unittest.TestCase):
    def test_dead_worker_dropped_and_ids_kept_across_coordinator_restart(self):
        state = os.path.join(tempfile.mkdtemp(prefix="dtrain-state-"), "state")
        with Cluster(workers=2, heartbeat_timeout=3.0,
                     coordinator_args=["--state-dir", state, "--dead-worker-seconds", str(GRACE)]) as c:
            # A third worker claims local rank 0 again on this host.
            dup = c._spawn("worker-dup", [f"{BIN}/dtrain-worker", "--coordinator", c.address,
                                          "--local-rank", "0", "--blas-threads", "1"])
            c.wait_idle(3)
            workers = c.json("workers")
            dup_id = next(w["id"] for w in workers if w["pid"] == dup.pid)
            rank0 = [w["id"] for w in workers if w["local_rank"] == 0 and w["id"] != dup_id]
            self.assertEqual(len(rank0), 1, workers)
            log = c.log("coordinator")
            self.assertIn(f"and {dup_id} (pid {dup.pid}) on host ", log)
            self.assertIn("both claim local rank 0", log)
            self.assertIn(f"workers {rank0[0]} (pid ", log)

            # Killed for good: DEAD, then gone after the grace.
            os.kill(dup.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(lambda: ids_by_state(c).get(dup_id) == "DEAD", 5, f"{dup_id} to show DEAD",
                     interval=0.02)
            wait_for(lambda: dup_id not in ids_by_state(c), 15, f"{dup_id} to leave the list")
            gone_after = time.monotonic() - killed_at
            self.assertGreaterEqual(gone_after, GRACE - 0.5, "dropped before its grace")
            self.assertLess(gone_after, GRACE + 8)
            self.assertRegex(c.log("coordinator"),
                             rf"worker {dup_id} \(host [^,]+, local rank 0\) dropped from the "
                             r"registry: DEAD for \d+ s")
            before = ids_by_state(c)
            self.assertEqual(sorted(before.values()), ["IDLE", "IDLE"], before)

            # kill -9 the coordinator; the same port and state dir (default grace this time).
            os.kill(c.coordinator.pid, signal.SIGKILL)
            c.coordinator.wait(10)
            c.coordinator_args = [a for a in c.coordinator_args
                                  if a not in ("--dead-worker-seconds", str(GRACE))]
            c.start_coordinator()
            after = wait_for(lambda: (lambda s: s if sorted(s.values()) == ["IDLE", "IDLE"] else None)(
                ids_by_state(c)), 30, "both workers back IDLE")
            self.assertEqual(sorted(after), sorted(before), "the workers keep their ids")
            restarted = c.log("coordinator-1")
            for wid in before:
                self.assertRegex(restarted, rf"worker {wid} \(host [^,]+, pid \d+\) is back after the "
                                            r"coordinator restarted and keeps its id")
            self.assertNotIn("asked to keep its id", restarted)
            for i in (0, 1):
                self.assertIn("(kept its id)", c.log(f"worker{i}"))

            # They work under those ids.
            r = c.cli("submit", c.write_spec("bench.yaml", BENCH), "--wait", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "SUCCEEDED", job.get("reason"))
            self.assertEqual(sorted(x["worker_id"] for x in job["ranks"]), sorted(before))

    def test_dead_worker_seconds_must_be_positive(self):
        r = subprocess.run([f"{BIN}/dtrain-coordinator", "--listen", "127.0.0.1:0",
                            "--dead-worker-seconds", "0"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--dead-worker-seconds 0: allowed more than 0", r.stderr)


if __name__ == "__main__":
    unittest.main()
