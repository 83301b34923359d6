"""Hardening, with real processes: a second coordinator on the same port or
the same --state-dir refuses to start (exit 2, saying why and naming the
holder); the daemons exit 2 on bad flags; a worker whose join token is refused
stops with exit 6 instead of retrying forever; with default flags a stopped
rank is named by the stall inspector before the heartbeat deadline fails its
job; the final step of a job with a
checkpoint directory is always checkpointed and reported."""

import os
import signal
import subprocess
import tempfile
import unittest

from cluster import BIN, Cluster, wait_for

SPEC = """
name: it-final-checkpoint
kind: train
workers: 1
seed: 5
model: resnet20
dataset: {name: synthetic, image_size: 12, channels: 1, classes: 4, train_size: 256, test_size: 32}
batch_per_worker: 16
epochs: 1
max_steps: 2
optimizer: {name: sgd}
schedule: {base_lr: 0.05, warmup_epochs: 0}
allreduce: {dtype: fp32}
checkpoint: {dir: CKPT, every_steps: 1, keep: 5}
"""


def run(argv, timeout=30):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, UCX_NET_DEVICES="lo"))


class Hardening(unittest.TestCase):
    def test_second_coordinator_on_the_same_port_exits_2_address_in_use(self):
        with Cluster(workers=0) as c:
            r = run([f"{BIN}/dtrain-coordinator", "--listen", c.address])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("address already in use", r.stderr)
            self.assertEqual(c.cli("list").returncode, 0, "the first one still serves")

    def test_second_coordinator_on_the_same_state_dir_exits_2_naming_it_and_the_holder(self):
        state = tempfile.mkdtemp(prefix="dtrain-it-state-")
        with Cluster(workers=0, coordinator_args=["--state-dir", state]) as c:
            r = run([f"{BIN}/dtrain-coordinator", "--listen", "127.0.0.1:0", "--state-dir", state])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"--state-dir {state} is in use by another coordinator", r.stderr)
            self.assertIn(f"(pid {c.coordinator.pid}", r.stderr)
            # The holder is untouched, and a restart after it died takes the lock.
            self.assertEqual(c.cli("list").returncode, 0)
            c.coordinator.kill()
            c.coordinator.wait(10)
            c.start_coordinator()
            self.assertEqual(c.cli("list").returncode, 0)

    def test_daemons_exit_2_on_bad_flags(self):
        for binary, bad in (("dtrain-coordinator", "--no-such-flag"), ("dtrain-worker", "--no-such-flag"),
                            ("dtrain-coordinator", "--heartbeat-timeout=abc")):
            r = run([f"{BIN}/{binary}", bad])
            self.assertEqual(r.returncode, 2, f"{binary} {bad}: {r.stderr}")
        self.assertEqual(run([f"{BIN}/dtrain-coordinator", "--help"]).returncode, 0)

    def test_a_worker_whose_join_token_is_refused_stops_with_exit_6(self):
        d = tempfile.mkdtemp(prefix="dtrain-it-token-")
        good, bad = os.path.join(d, "join.token"), os.path.join(d, "wrong.token")
        for path, token in ((good, "join-secret-0123456789"), (bad, "not-the-join-token")):
            with open(path, "w") as f:
                f.write(token + "\n")
            os.chmod(path, 0o600)
        with Cluster(workers=0, coordinator_args=["--join-token-file", good]) as c:
            r = run([f"{BIN}/dtrain-worker", "--coordinator", c.address, "--join-token-file", bad,
                     "--reconnect-max-seconds", "0.5"], timeout=60)
            self.assertEqual(r.returncode, 6, r.stderr[-2000:])
            self.assertIn("refused this worker 5 times in a row", r.stderr)
            self.assertEqual(c.json("workers"), [])

    def test_a_binary_spec_file_exits_2_naming_the_file_and_offset(self):
        d = tempfile.mkdtemp(prefix="dtrain-it-spec-")
        for name, data, offset in (("nul.yaml", b"kind: train\nmodel: resnet20\x00\n", 27),
                                   ("latin1.yaml", b"name: caf\xe9\nkind: train\n", 9)):
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(data)
            r = run([f"{BIN}/dtrain", "--coordinator", "127.0.0.1:1", "submit", path])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"job spec '{path}' is not a YAML text file", r.stderr)
            self.assertIn(f"at offset {offset}", r.stderr)

    def test_with_default_flags_a_stopped_rank_is_named_before_the_deadline_fails_it(self):
        # Defaults: stall inspector 5 s, heartbeat deadline 10 s (README, "Stall inspector").
        spec = (SPEC.replace("workers: 1", "workers: 2").replace("max_steps: 2", "max_steps: 5000")
                .replace("epochs: 1", "epochs: 1000")
                .replace("checkpoint: {dir: CKPT, every_steps: 1, keep: 5}\n", ""))
        with Cluster(workers=2, heartbeat_timeout=10.0) as c:
            job_id = c.cli("submit", c.write_spec("s.yaml", spec), check=True).stdout.strip()
            job = c.wait_step(job_id, 3, 120)
            victim = next(r for r in job["ranks"] if r["rank"] == 1)
            pid = next(w["pid"] for w in c.json("workers") if w["id"] == victim["worker_id"])
            os.kill(pid, signal.SIGSTOP)
            try:
                j = wait_for(lambda: (lambda j: j if j.get("stalled") or j["state"] != "RUNNING" else None)(
                    c.job(job_id)), 30, "the stall report or the job's end")
                self.assertEqual(j["state"], "RUNNING", "the stall inspector must name the rank first: " +
                                 j.get("reason", ""))
                self.assertEqual([s["rank"] for s in j["stalled"]], [1])
                done = c.wait_state(job_id, ("FAILED",), 60)
                self.assertIn("rank 1", done["reason"])
            finally:
                os.kill(pid, signal.SIGCONT)

    def test_the_final_step_is_checkpointed_and_reported(self):
        with Cluster(workers=1, heartbeat_timeout=10.0) as c:
            ckpt = os.path.join(c.dir, "ckpt")
            r = c.cli("submit", c.write_spec("f.yaml", SPEC.replace("CKPT", ckpt)), "--wait", timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "SUCCEEDED")
            self.assertEqual(int(job["checkpoint_step"]), 2, job)
            self.assertTrue(os.path.exists(os.path.join(job["checkpoint_dir"], "model.ckpt")), job)
            self.assertTrue(job["checkpoint_dir"].endswith("step-000000002"), job)
            self.assertIn("Checkpoint", c.cli("status", job["id"], check=True).stdout)


if __name__ == "__main__":
    unittest.main()
