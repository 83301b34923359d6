"""Nothing is lost when a worker or the coordinator dies (real processes).

* A worker killed with SIGKILL mid-training: the job restarts from its last
  checkpoint on the idle replacement, completes, and its final accuracy is
  within 1 point of an undisturbed run of the same spec (the resume is exact,
  so in practice they are equal); at most one checkpoint interval is redone.
* The coordinator killed with SIGKILL mid-training and started again on the
  same --state-dir: `dtrain list` shows every job as before, and the running
  job resumes from its checkpoint and completes.
"""

import os
import re
import signal
import tempfile
import unittest

from cluster import Cluster, wait_for

EVERY = 8  # checkpoint.every_steps

SPEC = """
name: recover
kind: train
workers: 2
seed: 1234
model: resnet20
dataset: {name: fashion-mnist, train_limit: 1536, test_limit: 500}
batch_per_worker: 32
epochs: 2
optimizer: {name: lars}
schedule: {base_lr: 2.0, warmup_epochs: 0.5}
allreduce: {timeout_seconds: 30}
eval_every_epochs: 1
checkpoint: {dir: CKPT, every_steps: 8, keep: 2}
max_restarts: 2
"""

BENCH = """
name: small
kind: allreduce-bench
workers: 1
bench: {min_bytes: 1024, max_bytes: 4096, iterations: 2}
"""


def spec(c, name):
    return c.write_spec(name, SPEC.replace("CKPT", os.path.join(c.dir, "ckpt")))


class WorkerKilledMidTraining(unittest.TestCase):
    def test_job_restarts_from_checkpoint_and_matches_undisturbed_run(self):
        with Cluster(workers=3, heartbeat_timeout=3.0) as c:
            path = spec(c, "recover.yaml")
            r = c.cli("submit", path, "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            undisturbed = c.job(r.stdout.strip())
            self.assertEqual(undisturbed["state"], "SUCCEEDED")
            c.wait_idle(3)

            job_id = c.cli("submit", path, check=True).stdout.strip()
            job = wait_for(lambda: (lambda j: j if int(j.get("checkpoint_step", 0)) >= EVERY
                                    and int(j.get("step", 0)) >= EVERY + 3 else None)(c.job(job_id)),
                           300, "a checkpoint and a few steps past it")
            killed_step = int(job["step"])
            victim = next(x for x in job["ranks"] if x["rank"] == 1)
            pid = next(w["pid"] for w in c.json("workers") if w["id"] == victim["worker_id"])
            os.kill(pid, signal.SIGKILL)

            done = c.wait_state(job_id, ("SUCCEEDED", "FAILED"), 600)
            self.assertEqual(done["state"], "SUCCEEDED", done.get("reason"))
            self.assertEqual(done.get("restarts"), 1)
            events = "\n".join(done.get("events", []))
            self.assertIn("restart 1 of 2 after: lost rank 1", events)
            self.assertIn(victim["worker_id"], events)
            m = re.search(r"resuming from checkpoint step (\d+)", events)
            self.assertIsNotNone(m, events)
            resumed = int(m.group(1))
            self.assertLessEqual(killed_step - resumed, EVERY,
                                 f"killed at step {killed_step}, resumed at {resumed}")
            self.assertNotIn(victim["worker_id"], [x["worker_id"] for x in done["ranks"]],
                             "the replacement took the lost rank")
            a, b = undisturbed["eval_accuracy"], done["eval_accuracy"]
            self.assertLessEqual(abs(a - b), 0.01, f"undisturbed {a}, restarted {b}")
            print(f"undisturbed accuracy {a:.4f}, after kill -9 at step {killed_step} and resume "
                  f"from step {resumed}: {b:.4f}")


class CoordinatorKilledMidTraining(unittest.TestCase):
    def test_restart_on_same_state_dir_keeps_jobs_and_finishes_the_running_one(self):
        state = os.path.join(tempfile.mkdtemp(prefix="dtrain-state-"), "state")
        with Cluster(workers=2, heartbeat_timeout=3.0,
                     coordinator_args=["--state-dir", state]) as c:
            r = c.cli("submit", c.write_spec("small.yaml", BENCH), "--wait", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            cancelled = c.cli("submit", c.write_spec("big.yaml", BENCH), "--set", "workers=3",
                              check=True).stdout.strip()
            c.cli("cancel", cancelled, check=True)
            job_id = c.cli("submit", spec(c, "recover.yaml"), check=True).stdout.strip()
            queued = c.cli("submit", c.write_spec("later.yaml", BENCH), check=True).stdout.strip()
            wait_for(lambda: int(c.job(job_id).get("checkpoint_step", 0)) >= EVERY, 300,
                     "the first checkpoint")
            before = {j["id"]: j for j in c.json("list")}

            os.kill(c.coordinator.pid, signal.SIGKILL)
            c.coordinator.wait(10)
            c.start_coordinator()

            after = {j["id"]: j for j in c.json("list")}
            self.assertEqual(sorted(after), sorted(before), "every job is listed as before")
            for jid, j in before.items():
                if jid == job_id:
                    self.assertIn(after[jid]["state"], ("QUEUED", "RUNNING"))
                    continue
                if j["state"] == "SUCCEEDED" or j["state"] == "CANCELLED":
                    self.assertEqual(after[jid]["state"], j["state"], jid)
                    self.assertEqual(after[jid].get("spec_yaml"), j.get("spec_yaml"))

            done = c.wait_state(job_id, ("SUCCEEDED", "FAILED"), 600)
            self.assertEqual(done["state"], "SUCCEEDED", done.get("reason"))
            self.assertEqual(done.get("restarts", 0), 0, "a coordinator restart is not the job's")
            events = "\n".join(done.get("events", []))
            self.assertIn("the coordinator restarted while the job ran; resuming from checkpoint", events)
            later = c.wait_state(queued, ("SUCCEEDED", "FAILED"), 120)
            self.assertEqual(later["state"], "SUCCEEDED", "the queued job ran after the resumed one")
            # Ids go on from where they were.
            new = c.cli("submit", c.write_spec("new.yaml", BENCH), check=True).stdout.strip()
            self.assertNotIn(new, before)


if __name__ == "__main__":
    unittest.main()
