"""One model everywhere (issue 13): a 2-worker job averages its ranks' BN
running statistics before every evaluation and checkpoint, so the accuracy it
reports is exactly the accuracy of the checkpoint it saved, evaluated by one
separate process on the whole test set (tests/tools/eval_checkpoint). With
precise BN (bn_recalibration_batches) and 20 classes the same holds for top-1,
top-5 and the test loss, which `dtrain status` and the MLPerf log report."""

import json
import os
import subprocess
import unittest

from cluster import Cluster

BUILD = os.environ.get("DTRAIN_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))

SPEC = """
name: one-model
kind: train
workers: 2
seed: 11
model: resnet20
dataset: {name: fashion-mnist, train_limit: 4096, test_limit: 1000}
batch_per_worker: 64
epochs: 2
optimizer: {name: lars}
schedule: {base_lr: 2.0, warmup_epochs: 0.5}
eval_every_epochs: 1
checkpoint: {dir: CKPT, every_epochs: 1, keep: 2}
"""

PRECISE = """
name: precise-bn
kind: train
workers: 2
seed: 12
model: resnet20
dataset: {name: synthetic, classes: 20, channels: 3, image_size: 16, train_size: 2048, test_size: 600}
batch_per_worker: 32
epochs: 2
optimizer: {name: lars}
schedule: {base_lr: 2.0, warmup_epochs: 0.5}
eval_every_epochs: 1
bn_recalibration_batches: 4
checkpoint: {dir: CKPT, every_epochs: 1, keep: 2}
"""


class OneModel(unittest.TestCase):
    def run_and_evaluate_alone(self, c, text):
        """Runs the job; returns (job, [correct, total, top1, top5, loss] of its final checkpoint alone)."""
        path = c.write_spec("job.yaml", text.replace("CKPT", os.path.join(c.dir, "ckpt")))
        r = c.cli("submit", path, "--wait", timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        job = c.job(r.stdout.strip())
        self.assertEqual(job["state"], "SUCCEEDED", job.get("reason"))
        spec = c.write_spec("resolved.yaml", job["spec_yaml"])
        out = subprocess.run([os.path.join(BUILD, "tests", "eval_checkpoint"), spec, job["checkpoint_dir"]],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stderr)
        alone = [float(v) for v in out.stdout.strip().splitlines()[-1].split()]  # after the log lines
        print(f"job reported top-1 {job['eval_accuracy']:.6f}, top-5 {job['eval_top5_accuracy']:.6f}, "
              f"loss {job['eval_loss']:.6f}; {job['checkpoint_dir']} evaluated alone: {alone}")
        return job, alone

    def test_reported_accuracy_is_the_saved_checkpoints_accuracy(self):
        with Cluster(workers=2) as c:
            job, (correct, total, acc, _, loss) = self.run_and_evaluate_alone(c, SPEC)
            self.assertEqual(int(total), 1000)
            self.assertAlmostEqual(job["eval_accuracy"], acc, places=6)
            self.assertAlmostEqual(job["eval_loss"], loss, places=4)
            self.assertEqual(job["eval_top5_accuracy"], -1)  # 10 classes: top-5 is not reported

    def test_precise_bn_reports_top5_and_loss_of_the_saved_model(self):
        with Cluster(workers=2) as c:
            job, (correct, total, acc, top5, loss) = self.run_and_evaluate_alone(c, PRECISE)
            self.assertEqual(int(total), 600)
            self.assertAlmostEqual(job["eval_accuracy"], acc, places=6)
            self.assertAlmostEqual(job["eval_top5_accuracy"], top5, places=6)
            self.assertAlmostEqual(job["eval_loss"], loss, places=4)
            self.assertGreaterEqual(top5, acc)
            self.assertLess(top5, 1.0)  # 20 classes: top-5 is a real measurement
            status = c.cli("status", job["id"]).stdout
            self.assertIn(f"(top-5 {100 * job['eval_top5_accuracy']:.2f}%), test loss {job['eval_loss']:.4f}", status)
            with open(job["mlperf_log"]) as f:
                events = [json.loads(line.split(":::MLLOG", 1)[1]) for line in f if ":::MLLOG" in line]
            keys = [e["key"] for e in events]
            self.assertEqual(keys.count("eval_accuracy"), 2)
            self.assertEqual(keys.count("eval_loss"), 2)
            self.assertEqual(keys.count("eval_top5_accuracy"), 2)
            last = {e["key"]: e["value"] for e in events}
            self.assertAlmostEqual(last["eval_top5_accuracy"], top5, places=6)


if __name__ == "__main__":
    unittest.main()
