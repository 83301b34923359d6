"""One model everywhere (issue 13): a 2-worker job averages its ranks' BN
running statistics before every evaluation and checkpoint, so the accuracy it
reports is exactly the accuracy of the checkpoint it saved, evaluated by one
separate process on the whole test set (tests/tools/eval_checkpoint)."""

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


class OneModel(unittest.TestCase):
    def test_reported_accuracy_is_the_saved_checkpoints_accuracy(self):
        with Cluster(workers=2) as c:
            path = c.write_spec("one.yaml", SPEC.replace("CKPT", os.path.join(c.dir, "ckpt")))
            r = c.cli("submit", path, "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "SUCCEEDED", job.get("reason"))
            spec = c.write_spec("resolved.yaml", job["spec_yaml"])
            ckpt = job["checkpoint_dir"]
            out = subprocess.run([os.path.join(BUILD, "tests", "eval_checkpoint"), spec, ckpt],
                                 capture_output=True, text=True, timeout=300)
            self.assertEqual(out.returncode, 0, out.stderr)
            correct, total, acc = out.stdout.strip().splitlines()[-1].split()  # after the log lines
            print(f"job reported {job['eval_accuracy']:.6f}; {ckpt} evaluated alone: {correct}/{total} = {acc}")
            self.assertEqual(int(total), 1000)
            self.assertAlmostEqual(job["eval_accuracy"], float(acc), places=6)


if __name__ == "__main__":
    unittest.main()
