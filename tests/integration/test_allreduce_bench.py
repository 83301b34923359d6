"""A real coordinator and 3 real workers on loopback: the CLI submits an
allreduce-bench job with --wait, it succeeds with every size verified, and
`dtrain list --json` / `dtrain status --json` show it. Also 4 workers that
report two host names (--host) run the hierarchical schedule, verified."""

import unittest

from cluster import Cluster

SPEC = """
name: it-bench
kind: allreduce-bench
workers: 3
allreduce: {dtype: fp16, timeout_seconds: 30}
bench: {min_bytes: 1024, max_bytes: 4194304, iterations: 5}
"""


class AllreduceBenchThroughTheService(unittest.TestCase):
    def test_three_workers_bench_succeeds_and_is_listed(self):
        with Cluster(workers=3) as c:
            spec = c.write_spec("bench.yaml", SPEC)
            r = c.cli("submit", spec, "--wait", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            job_id = r.stdout.strip()
            self.assertRegex(job_id, r"^job-\d+$", "submit prints the job id alone on stdout")

            jobs = c.json("list")
            self.assertEqual([j["id"] for j in jobs], [job_id])
            self.assertEqual(jobs[0]["state"], "SUCCEEDED")

            job = c.json("status", job_id)
            for key in ("id", "state", "reason", "world_size", "step", "epoch", "loss",
                        "images_per_second", "eval_accuracy", "bench"):
                self.assertIn(key, job)
            self.assertEqual(job["state"], "SUCCEEDED")
            self.assertEqual(job["world_size"], 3)
            self.assertEqual(sorted(r["rank"] for r in job["ranks"]), [0, 1, 2])
            rows = job["bench"]["rows"]
            self.assertEqual([int(r["bytes"]) for r in rows], [1024 << i for i in range(13)])
            for row in rows:
                self.assertTrue(row["verified"], row)
                self.assertGreater(row["busbw_gbps"], 0)
                self.assertAlmostEqual(row["busbw_gbps"], row["algbw_gbps"] * 4 / 3, places=6)
            self.assertEqual(job["bench"]["backend"], "ucx")
            self.assertEqual(job["bench"]["world_size"], 3)

            text = c.cli("status", job_id, check=True).stdout
            self.assertIn("busbw", text)
            self.assertIn("SUCCEEDED", text)
            c.wait_idle(3)  # every worker returns to idle

    def test_hierarchical_bench_on_two_named_hosts_is_verified(self):
        with Cluster() as c:
            for i, host in enumerate(["ita", "ita", "itb", "itb"]):
                c.add_worker(i, extra=["--host", host])
            c.wait_idle(4)
            spec = c.write_spec("bench.yaml", SPEC.replace("workers: 3", "workers: 4").replace(
                "dtype: fp16,", "dtype: fp16, algorithm: hierarchical,"))
            r = c.cli("submit", spec, "--wait", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.json("status", r.stdout.strip())
            self.assertEqual(job["state"], "SUCCEEDED")
            self.assertEqual(job["bench"]["algorithm"], "hierarchical")
            self.assertEqual(job["bench"]["hosts"], 2)
            self.assertTrue(all(row["verified"] for row in job["bench"]["rows"]), job["bench"])
            text = c.cli("status", job["id"], check=True).stdout
            self.assertIn("backend ucx (hierarchical), dtype fp16, 4 ranks on 2 host(s)", text)


if __name__ == "__main__":
    unittest.main()
