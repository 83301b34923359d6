"""dtrain logs through the service: on a running 2-worker job it shows both
ranks' lines; --follow streams new ones and exits when the job ends; after a
worker was SIGKILLed, the job's status and `dtrain logs --rank R` say what is
known about the lost rank while the survivor's lines are still there; an
unknown job exits 4 and a bad --rank 2. (Wrong tokens: test_auth.py.)"""

import os
import re
import signal
import subprocess
import unittest

from cluster import BIN, Cluster, wait_for

TRAIN = """
name: it-logs
kind: train
workers: 2
seed: 7
model: resnet20
dataset: {name: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 2000, test_limit: 200}
batch_per_worker: 32
epochs: 4
optimizer: {name: sgd, momentum: 0.9}
schedule: {base_lr: 0.1, warmup_epochs: 0, decay: cosine}
allreduce: {dtype: fp16, bucket_mb: 1}
eval_every_epochs: 0.5
"""

LONG = """
name: it-logs-long
kind: allreduce-bench
workers: 2
allreduce: {dtype: fp32, timeout_seconds: 60}
bench: {min_bytes: 1048576, max_bytes: 268435456, iterations: 200}
"""

LINE = re.compile(r"^\[rank (\d+) (\S+)\] (.*)$")


def ranks_in(text):
    return {int(m.group(1)) for m in map(LINE.match, text.splitlines()) if m}


class LogsThroughTheService(unittest.TestCase):
    def test_running_job_shows_both_ranks_and_follow_streams_until_the_end(self):
        with Cluster(workers=2, heartbeat_timeout=10.0) as c:
            job_id = c.cli("submit", c.write_spec("train.yaml", TRAIN), check=True).stdout.strip()
            c.wait_step(job_id, 1, 120)
            r = c.cli("logs", job_id, check=True)
            self.assertEqual(ranks_in(r.stdout), {0, 1}, r.stdout + r.stderr)
            self.assertIn(f"job {job_id}: rank 1 of 2 starting", r.stdout)
            hosts = {m.group(2) for m in map(LINE.match, r.stdout.splitlines()) if m}
            self.assertEqual(hosts, {w["host"] for w in c.json("workers")})

            r = c.cli("logs", job_id, "--rank", "1", "--tail", "1", check=True)
            self.assertEqual(len(r.stdout.splitlines()), 1, r.stdout)
            self.assertEqual(ranks_in(r.stdout), {1})

            follow = subprocess.Popen([f"{BIN}/dtrain", "--coordinator", c.address, "logs", job_id,
                                       "--follow", "--tail", "0"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = follow.communicate(timeout=300)
            finally:
                follow.kill()
            self.assertEqual(follow.returncode, 0, err)
            self.assertEqual(c.job(job_id)["state"], "SUCCEEDED")
            # Lines logged after --follow started, up to each rank's last.
            self.assertIn(f"job {job_id}: rank 0 done", out)
            self.assertIn(f"job {job_id}: rank 1 done", out)
            self.assertRegex(out, r"\[rank 0 \S+\] .*step \d+/\d+ epoch [\d.]+: loss")

            # A finished job's lines are still there.
            r = c.cli("logs", job_id, check=True)
            self.assertEqual(ranks_in(r.stdout), {0, 1})

            r = c.cli("logs", "job-424242")
            self.assertEqual(r.returncode, 4, r.stderr)
            self.assertIn("job-424242", r.stderr)
            r = c.cli("logs", job_id, "--rank", "5")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("has 2 rank(s)", r.stderr)

    def test_after_sigkill_status_and_logs_say_what_is_known_of_the_lost_rank(self):
        with Cluster(workers=2, heartbeat_timeout=3.0) as c:
            job_id = c.cli("submit", c.write_spec("long.yaml", LONG), check=True).stdout.strip()
            job = c.wait_step(job_id, 1, 60)
            victim = next(r for r in job["ranks"] if r["rank"] == 1)
            pid = next(w["pid"] for w in c.json("workers") if w["id"] == victim["worker_id"])
            os.kill(pid, signal.SIGKILL)
            failed = c.wait_state(job_id, ("FAILED",), 10)
            self.assertIn("rank 1", failed["reason"])
            self.assertIn(victim["worker_id"], failed["reason"])

            r = c.cli("logs", job_id, "--rank", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "")
            self.assertIn("rank 1", r.stderr)
            self.assertIn(victim["worker_id"], r.stderr)
            self.assertIn(victim["host"], r.stderr)
            self.assertIn("DEAD", r.stderr)

            # The survivor still serves its lines, up to its own failure.
            r = c.cli("logs", job_id, "--rank", "0", check=True)
            self.assertEqual(ranks_in(r.stdout), {0})
            self.assertRegex(r.stdout, rf"job {job_id}: rank 0 (failed|stopped)")
            text = c.cli("status", job_id, check=True).stdout
            self.assertIn(victim["worker_id"], text)


if __name__ == "__main__":
    unittest.main()
