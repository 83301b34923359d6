"""Training through the service: a real coordinator and 2 real workers train
resnet20 on a 6,000-image Fashion-MNIST subset to >= 80 % test accuracy; the
CLI reports the result, throughput and scaling efficiency, and both ranks
started from identical weights."""

import json
import os
import re
import subprocess
import unittest

from cluster import BIN, Cluster

SPEC = """
name: it-train
kind: train
workers: 2
seed: 42
model: resnet20
dataset: {name: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 6000, test_limit: 2000}
batch_per_worker: 64
epochs: 10
optimizer: {name: lars, momentum: 0.9, weight_decay: 5.0e-5, lars_eta: 0.001}
schedule: {base_lr: 2.0, warmup_epochs: 1, decay: poly, poly_power: 2.0}
label_smoothing: 0.1
allreduce: {dtype: fp16, bucket_mb: 1}
eval_every_epochs: 1
target_accuracy: 0.80
"""


class TrainThroughTheService(unittest.TestCase):
    def test_two_workers_reach_80_percent_on_a_fashion_mnist_subset(self):
        with Cluster(workers=2, heartbeat_timeout=10.0) as c:
            r = c.cli("submit", c.write_spec("train.yaml", SPEC), "--wait", timeout=900)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "SUCCEEDED")
            self.assertGreaterEqual(job["eval_accuracy"], 0.80)
            train = job["train"]
            self.assertTrue(train["reached_target"])
            self.assertGreaterEqual(train["eval_accuracy"], 0.80)
            self.assertGreater(int(train["steps"]), 0)
            self.assertLess(int(train["steps"]), 10 * (6000 // 128), "stopped at the target")
            self.assertGreater(train["images_per_second"], 0)
            self.assertGreater(job["scaling_efficiency"], 0)
            self.assertLess(job["scaling_efficiency"], 1.5)

            # Both ranks built identical weights from the seed (checked by the
            # trainer itself through a broadcast of rank 0's checksum).
            logs = c.log("worker0") + c.log("worker1")
            self.assertRegex(logs, r"initial weights checksum [0-9a-f]{16}, identical on all 2 ranks")
            accs = re.findall(r"test accuracy (0\.\d+)", logs)
            self.assertTrue(accs, "rank 0 logs every evaluation")

            # Rank 0 wrote the MLPerf log that `dtrain status` names; it ends in success.
            self.assertTrue(job["mlperf_log"].endswith(job["id"] + ".mllog"), job["mlperf_log"])
            self.assertIn("MLPerf log:", c.cli("status", job["id"], check=True).stdout)
            with open(job["mlperf_log"]) as f:
                lines = [json.loads(l.split(":::MLLOG ", 1)[1]) for l in f if l.startswith(":::MLLOG ")]
            keys = [l["key"] for l in lines]
            self.assertLess(keys.index("init_stop"), keys.index("run_start"))
            self.assertIn("eval_accuracy", keys)
            self.assertEqual(keys[-1], "run_stop")
            self.assertEqual(lines[-1]["metadata"]["status"], "success")

    def test_a_cuda_job_on_a_worker_without_a_gpu_fails_naming_the_host_and_why(self):
        # Never trains elsewhere: device: cuda on a CPU worker is FAILED with the
        # reason, and the same spec with device: auto trains on the CPU.
        spec = SPEC.replace("workers: 2", "workers: 1").replace("epochs: 10", "epochs: 1") + "max_steps: 2\n"
        with Cluster(workers=1, heartbeat_timeout=10.0) as c:
            path = c.write_spec("cuda.yaml", spec)
            r = c.cli("submit", path, "--set", "device=cuda", "--wait", timeout=300)
            self.assertNotEqual(r.returncode, 0)
            job = c.job(r.stdout.strip())
            self.assertEqual(job["state"], "FAILED", job)
            self.assertIn("device: cuda was asked for", job["reason"])
            self.assertIn("no usable CUDA device", job["reason"])
            self.assertIn("host ", job["reason"])
            r = c.cli("submit", path, "--set", "device=auto", "--wait", timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            # --blas-threads 1 (the cluster's) and --data-threads auto: 1 decoder on the CPU engine.
            self.assertIn("trains on the cpu engine (1 compute thread(s), 1 data thread(s))", c.log("worker0"))

    def test_cpu_kernels_flag_picks_the_reference_or_rejects_unknown_names(self):
        # The engine line names the kernels: --cpu-kernels reference trains on
        # im2col + OpenBLAS; a default worker on oneDNN when the build has it.
        spec = SPEC.replace("workers: 2", "workers: 1").replace("epochs: 10", "epochs: 1") + "max_steps: 2\n"
        with Cluster(workers=1, heartbeat_timeout=10.0, worker_args=["--cpu-kernels", "reference"]) as c:
            r = c.cli("submit", c.write_spec("ref.yaml", spec), "--wait", timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            log = c.log("worker0")
            self.assertIn("cpu_kernels=reference", log)
            self.assertIn("reference kernels: im2col + OpenBLAS", log)
        with Cluster(workers=1, heartbeat_timeout=10.0) as c:
            r = c.cli("submit", c.write_spec("auto.yaml", spec), "--wait", timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            log = c.log("worker0")
            build = os.environ.get("DTRAIN_BUILD_DIR", "")
            cache = os.path.join(build, "CMakeCache.txt")
            self.assertTrue(os.path.exists(cache), "DTRAIN_BUILD_DIR names the build directory (set by ctest)")
            with open(cache) as f:
                have_dnnl = re.search(r"^dnnl_DIR:PATH=/", f.read(), re.M) is not None
            if have_dnnl:
                self.assertRegex(log, r"cpu \(fp32, oneDNN [0-9.]+ \(cpu runtime \w+, isa \w+\), blocked layouts")
            else:
                self.assertIn("reference kernels", log)
        bad = subprocess.run([f"{BIN}/dtrain-worker", "--cpu-kernels", "mkl"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 2, bad.stderr)
        self.assertIn("--cpu-kernels: CPU kernels 'mkl': allowed auto, onednn, reference", bad.stderr)


if __name__ == "__main__":
    unittest.main()
