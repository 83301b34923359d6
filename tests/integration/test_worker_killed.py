"""A worker killed with SIGKILL mid-job: the job FAILS within the heartbeat
deadline with a reason naming the lost rank and host, the other workers return
to idle, and a new job then runs on the survivors."""

import os
import signal
import time
import unittest

from cluster import Cluster

HEARTBEAT_TIMEOUT = 3.0

LONG = """
name: long-bench
kind: allreduce-bench
workers: 3
allreduce: {dtype: fp32, timeout_seconds: 60}
bench: {min_bytes: 1048576, max_bytes: 268435456, iterations: 200}
"""


class WorkerKilledMidJob(unittest.TestCase):
    def test_job_fails_naming_lost_rank_and_survivors_run_the_next_job(self):
        with Cluster(workers=3, heartbeat_timeout=HEARTBEAT_TIMEOUT) as c:
            job_id = c.cli("submit", c.write_spec("long.yaml", LONG), check=True).stdout.strip()
            job = c.wait_step(job_id, 1, 60)
            self.assertEqual(job["state"], "RUNNING")
            victim = next(r for r in job["ranks"] if r["rank"] == 1)
            pid = next(w["pid"] for w in c.json("workers") if w["id"] == victim["worker_id"])
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()

            failed = c.wait_state(job_id, ("FAILED",), HEARTBEAT_TIMEOUT + 2)
            self.assertLess(time.monotonic() - killed_at, HEARTBEAT_TIMEOUT + 2)
            self.assertIn("rank 1", failed["reason"])
            self.assertIn(f"host {victim['host']}", failed["reason"])
            self.assertIn(victim["worker_id"], failed["reason"])

            # The survivors abort their collectives and return to idle.
            c.wait_idle(2, timeout=HEARTBEAT_TIMEOUT + 5)
            states = {w["id"]: w["state"] for w in c.json("workers")}
            self.assertEqual(states[victim["worker_id"]], "DEAD")

            # A new job runs on the survivors.
            r = c.cli("submit", c.write_spec("next.yaml", LONG), "--set", "workers=2",
                      "--set", "bench.max_bytes=1048576", "--set", "bench.iterations=3",
                      "--wait", timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            done = c.job(r.stdout.strip())
            self.assertEqual(done["state"], "SUCCEEDED")
            self.assertNotIn(victim["worker_id"], [x["worker_id"] for x in done["ranks"]])

            r = c.cli("watch", job_id)
            self.assertEqual(r.returncode, 1, "watch of a failed job exits 1")


if __name__ == "__main__":
    unittest.main()
