"""The control plane's edges, with real processes: a bad spec is rejected
with the field named and creates nothing; cancel; the CLI's exit codes;
workers that start before the coordinator register once it is up; and a
stalled rank that stops heartbeating fails its job within the deadline."""

import os
import signal
import time
import unittest

from cluster import free_port, BIN, Cluster, wait_for
import subprocess



class ControlPlane(unittest.TestCase):
    def test_bad_spec_is_rejected_naming_the_field_and_creates_nothing(self):
        with Cluster(workers=0) as c:
            spec = c.write_spec("bad.yaml", "kind: allreduce-bench\nworkers: 2\noptimizer: {name: adam}\n")
            r = c.cli("submit", spec)
            self.assertEqual(r.returncode, 2)
            self.assertIn("optimizer.name", r.stderr)
            self.assertIn("sgd, lars", r.stderr)
            self.assertEqual(r.stdout, "")
            r = c.cli("submit", spec, "--set", "optimizer.name=sgd", "--set", "workers=-1")
            self.assertEqual(r.returncode, 2)
            self.assertIn("`workers`", r.stderr)
            self.assertEqual(c.json("list"), [])

    def test_coordinator_serves_the_standard_grpc_health_service(self):
        import grpc  # Debian's python3-grpcio
        with Cluster(workers=0) as c:
            with grpc.insecure_channel(c.address) as ch:
                check = ch.unary_unary("/grpc.health.v1.Health/Check",
                                       request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
                # HealthCheckResponse{status: SERVING (1)} is the bytes 08 01.
                self.assertEqual(check(b"", timeout=10), b"\x08\x01")

    def test_unknown_job_and_unreachable_coordinator_exit_codes(self):
        with Cluster(workers=0) as c:
            self.assertEqual(c.cli("status", "job-424242").returncode, 4)
        r = subprocess.run([f"{BIN}/dtrain", "--coordinator", f"127.0.0.1:{free_port()}", "list"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot reach the coordinator", r.stderr)

    def test_queued_job_can_be_cancelled(self):
        with Cluster(workers=1) as c:
            spec = c.write_spec("b.yaml", "kind: allreduce-bench\nworkers: 2\n")
            job_id = c.cli("submit", spec, check=True).stdout.strip()
            self.assertEqual(c.job(job_id)["state"], "QUEUED")
            self.assertEqual(c.cli("cancel", job_id).returncode, 0)
            self.assertEqual(c.job(job_id)["state"], "CANCELLED")

    def test_worker_started_before_the_coordinator_registers_when_it_comes_up(self):
        port = free_port()
        env = dict(os.environ, UCX_NET_DEVICES="lo")
        w = subprocess.Popen([f"{BIN}/dtrain-worker", "--coordinator", f"127.0.0.1:{port}",
                              "--reconnect-max-seconds", "0.5"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            time.sleep(1.5)  # a few failed attempts
            coord = subprocess.Popen([f"{BIN}/dtrain-coordinator", "--listen", f"127.0.0.1:{port}"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
            try:
                def registered():
                    r = subprocess.run([f"{BIN}/dtrain", "--coordinator", f"127.0.0.1:{port}",
                                        "workers", "--json"], capture_output=True, text=True,
                                       timeout=10)
                    return r.returncode == 0 and '"IDLE"' in r.stdout
                wait_for(registered, 15, "the early worker to register")
            finally:
                coord.kill()
                coord.wait(timeout=10)
        finally:
            w.kill()
            w.wait(timeout=10)

    def test_stopped_worker_fails_its_job_within_the_heartbeat_deadline(self):
        with Cluster(workers=2, heartbeat_timeout=2.0) as c:
            spec = c.write_spec("l.yaml", "kind: allreduce-bench\nworkers: 2\n"
                                "allreduce: {timeout_seconds: 60}\n"
                                "bench: {min_bytes: 1048576, max_bytes: 268435456, iterations: 200}\n")
            job_id = c.cli("submit", spec, check=True).stdout.strip()
            job = c.wait_step(job_id, 1, 60)
            victim = next(r for r in job["ranks"] if r["rank"] == 0)
            pid = next(w["pid"] for w in c.json("workers") if w["id"] == victim["worker_id"])
            os.kill(pid, signal.SIGSTOP)
            try:
                stopped_at = time.monotonic()
                failed = c.wait_state(job_id, ("FAILED",), 2.0 + 3)
                self.assertLess(time.monotonic() - stopped_at, 2.0 + 3)
                self.assertIn("lost rank 0", failed["reason"])
                self.assertIn("no heartbeat", failed["reason"])
                c.wait_idle(1, timeout=10)  # the other rank is back
            finally:
                os.kill(pid, signal.SIGCONT)
            # The stopped worker, resumed, re-registers and is idle again.
            c.wait_idle(2, timeout=20)


if __name__ == "__main__":
    unittest.main()
