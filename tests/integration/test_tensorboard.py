"""TensorBoard event files (issue 15): rank 0 of a 2-worker Fashion-MNIST job
writes <worker --log-dir>/<job id>/events.out.tfevents.*, and TensorBoard's
OWN reader (EventAccumulator) loads them: every train/time series at every
`tensorboard.every_steps` steps and the last step, every eval series at the
evaluation steps, and eval/accuracy equal (to float32) to the MLPerf log's
eval_accuracy values, the last one to `dtrain status --json`'s.

TensorBoard comes from PyPI into <repo>/.pydeps (deploy/install-deps.sh); it
is appended to sys.path after Debian's packages, whose protobuf and numpy it
runs on. Without it the test skips, saying so."""

import json
import os
import struct
import sys
import tempfile
import unittest

from cluster import Cluster

PYDEPS = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.pydeps"))
sys.path.append(PYDEPS)
try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    TB_ERROR = None
except ImportError as e:
    TB_ERROR = f"tensorboard is not importable ({e}); run deploy/install-deps.sh to put it in {PYDEPS}"

SPEC = """
name: tensorboard
kind: train
workers: 2
seed: 21
model: resnet20
dataset: {name: fashion-mnist, train_limit: 1024, test_limit: 500}
batch_per_worker: 64
epochs: 2
optimizer: {name: lars}
schedule: {base_lr: 2.0, warmup_epochs: 0.5}
eval_every_epochs: 1
tensorboard: {every_steps: 4}
"""
EVERY = 4
STEPS_PER_EPOCH = 1024 // (2 * 64)

TRAIN_TAGS = ["train/loss", "train/learning_rate", "train/images_per_second", "time/data_seconds",
              "time/compute_seconds", "time/comm_seconds", "time/update_seconds"]
EVAL_TAGS = ["eval/accuracy", "eval/loss"]  # 10 classes: no eval/top5_accuracy


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


class Tensorboard(unittest.TestCase):
    def setUp(self):
        if TB_ERROR:
            raise unittest.SkipTest(TB_ERROR)

    def test_tensorboards_reader_sees_every_series_and_the_mlperf_accuracies(self):
        log_dir = tempfile.mkdtemp(prefix="dtrain-tb-")
        with Cluster(workers=2, worker_args=["--log-dir", log_dir]) as c:
            r = c.cli("submit", c.write_spec("job.yaml", SPEC), "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "SUCCEEDED", job.get("reason"))
            total = int(job["total_steps"])
            self.assertEqual(total, 2 * STEPS_PER_EPOCH)

            run_dir = os.path.join(log_dir, job["id"])
            files = os.listdir(run_dir)
            self.assertEqual(len(files), 1, files)  # rank 0 only, one file
            self.assertTrue(files[0].startswith("events.out.tfevents."), files)

            acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})  # 0: keep every point
            acc.Reload()
            tags = acc.Tags()["scalars"]
            self.assertEqual(sorted(tags), sorted(TRAIN_TAGS + EVAL_TAGS))
            train_steps = sorted(set(list(range(EVERY, total + 1, EVERY)) + [total]))
            eval_steps = list(range(STEPS_PER_EPOCH, total + 1, STEPS_PER_EPOCH))
            for tag in TRAIN_TAGS:
                self.assertEqual([e.step for e in acc.Scalars(tag)], train_steps, tag)
            for tag in EVAL_TAGS:
                self.assertEqual([e.step for e in acc.Scalars(tag)], eval_steps, tag)
            # The last train/loss point is the final loss rank 0 reported.
            self.assertEqual(acc.Scalars("train/loss")[-1].value, f32(job["train"]["final_loss"]))

            with open(job["mlperf_log"]) as f:
                events = [json.loads(line.split(":::MLLOG", 1)[1]) for line in f if ":::MLLOG" in line]
            mlperf = [e for e in events if e["key"] == "eval_accuracy"]
            tb = acc.Scalars("eval/accuracy")
            self.assertEqual(len(mlperf), len(tb))
            for m, t in zip(mlperf, tb):
                self.assertEqual(f32(m["value"]), t.value)
                # The MLPerf log's epoch_num is the epochs trained at the evaluation.
                self.assertAlmostEqual(m["metadata"]["epoch_num"] * STEPS_PER_EPOCH, t.step)
            self.assertEqual(f32(job["eval_accuracy"]), tb[-1].value)
            print(f"{run_dir}/{files[0]}: {len(tags)} series; eval/accuracy "
                  f"{[(t.step, round(t.value, 6)) for t in tb]} == MLPerf "
                  f"{[m['value'] for m in mlperf]}; status {job['eval_accuracy']}")


if __name__ == "__main__":
    unittest.main()
