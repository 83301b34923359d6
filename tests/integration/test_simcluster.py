"""The simulated multi-host cluster (deploy/simcluster.py, issue 14): 2 network
namespaces ("hosts") x 2 workers behind a bridge, links shaped by tbf, the
coordinator outside. Workers report their namespace's host name; an
allreduce-bench job succeeds with `allreduce.algorithm: ring` and with
`hierarchical`, and its inter-host traffic really crosses the shaped links (no
shared memory between namespaces); a short fp32 training job succeeds with
either algorithm. Their final weights are NOT bit-identical: the two
algorithms add the same four gradients in another order, and fp32 addition is
not associative (measured: another SHA-256 of the exported tensors, final
losses 2.24883550 vs 2.24883559). So the test compares the final training and
evaluation losses within 1e-5, as issue 14 allows, and prints both digests.
Skipped, with the reason, without root or network namespaces."""

import hashlib
import json
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../deploy"))
import simcluster  # noqa: E402

SKIP = simcluster.unavailable_reason()

BENCH = """
name: sim-bench
kind: allreduce-bench
workers: 4
allreduce: {dtype: fp32, timeout_seconds: 60, algorithm: ALGO}
bench: {min_bytes: 1048576, max_bytes: 4194304, iterations: 3}
"""

TRAIN = """
name: sim-train-ALGO
kind: train
workers: 4
seed: 7
model: resnet20
dataset: {name: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 2048, test_limit: 256}
batch_per_worker: 32
epochs: 1
max_steps: 12
optimizer: {name: lars, momentum: 0.9, weight_decay: 5.0e-5, lars_eta: 0.001}
schedule: {base_lr: 1.0, warmup_epochs: 0.5}
allreduce: {dtype: fp32, bucket_mb: 1, algorithm: ALGO, timeout_seconds: 60}
checkpoint: {dir: CKPT}
"""


def tensor_digest(path):
    """SHA-256 of a safetensors file's tensors (names, shapes, bytes), metadata left out."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    h = hashlib.sha256()
    for name in sorted(header):
        b, e = header[name]["data_offsets"]
        h.update(f"{name}:{header[name]['dtype']}:{header[name]['shape']}".encode())
        h.update(data[b:e])
    return h.hexdigest()


@unittest.skipIf(SKIP, f"simulated cluster unavailable: {SKIP}")
class SimulatedTwoHostCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = simcluster.SimCluster(hosts=2, per_host=2, rate="1gbit")

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def run_job(self, name, spec, timeout=300):
        r = self.c.cli("submit", self.c.write_spec(name, spec), "--wait", timeout=timeout)
        job = self.c.job(r.stdout.strip()) if r.stdout.strip() else {}
        self.assertEqual(r.returncode, 0, f"{r.stderr}\n{job.get('reason')}")
        self.assertEqual(job["state"], "SUCCEEDED", job.get("reason"))
        self.c.wait_idle(4)
        return job

    def test_each_worker_reports_the_host_name_of_its_namespace(self):
        hosts = sorted(w["host"] for w in self.c.json("workers"))
        self.assertEqual(hosts, ["host0", "host0", "host1", "host1"])

    def test_allreduce_bench_succeeds_and_its_inter_host_bytes_cross_the_shaped_links(self):
        for algo in ("ring", "hierarchical"):
            with self.subTest(algorithm=algo):
                before = self.c.link_stats()
                job = self.run_job(f"bench-{algo}.yaml", BENCH.replace("ALGO", algo))
                after = self.c.link_stats()
                self.assertEqual((job["bench"]["algorithm"], job["bench"]["hosts"]), (algo, 2))
                rows = job["bench"]["rows"]
                self.assertEqual([int(r["bytes"]) for r in rows], [1 << 20, 2 << 20, 4 << 20])
                self.assertTrue(all(r["verified"] for r in rows), rows)
                self.assertEqual(sorted({r["host"] for r in job["ranks"]}), ["host0", "host1"])
                # Any allreduce of S bytes between two hosts moves >= S bytes each way
                # (each host needs the other's partial sum). Through each host's link
                # (the veth behind its tbf qdiscs) we require half of that, over the
                # 3 timed iterations alone: shared memory between namespaces shows ~0.
                least = sum(int(r["bytes"]) for r in rows) * 3 // 2
                for host, (out_b, in_b) in after.items():
                    sent, received = out_b - before[host][0], in_b - before[host][1]
                    print(f"{algo}: {host} sent {sent} and received {received} bytes over its link "
                          f"(at least {least} each)")
                    self.assertGreaterEqual(sent, least, f"{host}'s outgoing allreduce bytes bypassed its link")
                    self.assertGreaterEqual(received, least, f"{host}'s incoming bytes bypassed its link")

    def test_training_with_ring_and_hierarchical_ends_with_the_same_losses(self):
        digests, losses = {}, {}
        for algo in ("ring", "hierarchical"):
            ckpt = os.path.join(self.c.dir, f"ckpt-{algo}")
            spec = TRAIN.replace("ALGO", algo).replace("CKPT", ckpt)
            job = self.run_job(f"train-{algo}.yaml", spec, timeout=600)
            self.assertEqual(int(job["train"]["steps"]), 12)
            out = os.path.join(self.c.dir, f"{algo}.safetensors")
            r = self.c.cli("export", job["id"], "-o", out, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            digests[algo] = tensor_digest(out)
            losses[algo] = (job["train"]["final_loss"], job["train"]["eval_loss"])
        print(f"final weights sha256 {digests} ({'identical' if len(set(digests.values())) == 1 else 'differ'}); "
              f"(final loss, eval loss) {losses}")
        for ring, hierarchical in zip(losses["ring"], losses["hierarchical"]):
            self.assertAlmostEqual(ring, hierarchical, delta=1e-5)


if __name__ == "__main__":
    unittest.main()
