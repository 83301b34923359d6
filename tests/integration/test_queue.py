"""The job queue with real processes: a job asking for more workers than are
registered says why it waits (`status --json` `reason`, `status`, `watch`, the
coordinator log) and a smaller job submitted after it runs and SUCCEEDS while
it stays QUEUED (backfill); `queue_timeout_seconds` fails a job with that
reason; `dtrain cancel` of a finished job exits 0 saying there is nothing to
cancel."""

import subprocess
import unittest

from cluster import BIN, Cluster, wait_for

SMALL = """
kind: allreduce-bench
workers: 1
allreduce: {timeout_seconds: 30}
bench: {min_bytes: 1024, max_bytes: 65536, iterations: 2, warmup: 1}
"""


class Queue(unittest.TestCase):
    def test_oversized_job_says_why_and_a_smaller_job_behind_it_runs(self):
        with Cluster(workers=2) as c:
            spec = c.write_spec("small.yaml", SMALL)
            big = c.cli("submit", spec, "--set", "workers=8", check=True).stdout.strip()
            why = "waiting for 8 workers, 2 registered, 2 idle"
            job = c.job(big)
            self.assertEqual((job["state"], job["reason"]), ("QUEUED", why))
            self.assertIn(f"Reason:         {why}", c.cli("status", big, check=True).stdout)

            # `dtrain watch` shows the reason (plain lines: stdout is a pipe).
            watch = subprocess.Popen([f"{BIN}/dtrain", "--coordinator", c.address, "watch", big],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=c.env)
            try:
                first = watch.stdout.readline()  # the watch is under way
                self.assertIn(f"{big} QUEUED {why}", first)
                # Submitted after the big job, it runs on one of the 2 workers.
                r = c.cli("submit", spec, "--wait", timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                small = r.stdout.strip()
                self.assertEqual(c.job(small)["state"], "SUCCEEDED")
                job = wait_for(lambda: (lambda j: j if j["reason"] == why else None)(c.job(big)),
                               10, "the big job's reason to show 2 idle workers again")
                self.assertEqual(job["state"], "QUEUED")
                self.assertEqual(job.get("ranks", []), [])
                # Cancel of a finished job: nothing to do, exit 0.
                r = c.cli("cancel", small)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, f"nothing to cancel: job {small} already SUCCEEDED\n")
                self.assertEqual(c.job(small)["state"], "SUCCEEDED")
                r = c.cli("cancel", big)
                self.assertEqual((r.returncode, r.stdout), (0, f"job {big} cancelled\n"))
                out, err = watch.communicate(timeout=30)
            finally:
                if watch.poll() is None:
                    watch.kill()
                    watch.wait(10)
            self.assertEqual(watch.returncode, 1, err)  # the watched job was CANCELLED
            self.assertIn(f"job {big} CANCELLED", out)
            self.assertIn("cancelled by the user", out)

            log = c.log("coordinator")
            self.assertIn(f"job {big} is queued: {why}", log)
            self.assertEqual(log.count(f"job {big} is queued: {why}"), 2,
                             "logged once per change (2 idle, 1 idle, 2 idle), not every tick")
            self.assertEqual(log.count(f"job {big} is queued: waiting for 8 workers, 2 registered, "
                                       "1 idle"), 1)
            self.assertIn(f"job {small} (1 worker) starts ahead of {big}", log)

    def test_queue_timeout_fails_the_job_with_the_reason(self):
        with Cluster(workers=1) as c:
            spec = c.write_spec("small.yaml", SMALL)
            r = c.cli("submit", spec, "--set", "queue_timeout_seconds=-1")
            self.assertEqual(r.returncode, 2)
            self.assertIn("`queue_timeout_seconds`", r.stderr)
            self.assertEqual(c.json("list"), [])

            r = c.cli("submit", spec, "--set", "workers=2", "--set", "queue_timeout_seconds=1",
                      "--wait", timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "FAILED")
            self.assertRegex(job["reason"], r"^queued for 1\.\d s \(queue_timeout_seconds 1\): "
                                            r"waiting for 2 workers, 1 registered, 1 idle$")
            self.assertIn(job["reason"], r.stderr, "submit --wait ends naming the reason")
            # The worker was never taken: a job that fits runs at once.
            r = c.cli("submit", spec, "--wait", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = c.cli("cancel", job["id"])
            self.assertEqual((r.returncode, r.stdout),
                             (0, f"nothing to cancel: job {job['id']} already FAILED\n"))


if __name__ == "__main__":
    unittest.main()
