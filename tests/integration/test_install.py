"""The README's "Deploying on a cluster", followed literally: `cmake --install
build --prefix DIR` into an empty folder, then a coordinator and a worker
started from DIR/bin run the installed quickstart job (shortened to a few
steps) through the installed CLI; the installed systemd units start the
installed binaries."""

import os
import subprocess
import tempfile
import unittest

from cluster import free_port, wait_for

BUILD = os.environ.get("DTRAIN_BUILD_DIR", "")


class InstalledTree(unittest.TestCase):
    def test_installed_binaries_run_the_installed_quickstart_job(self):
        self.assertTrue(BUILD, "DTRAIN_BUILD_DIR names the build directory (set by ctest)")
        prefix = tempfile.mkdtemp(prefix="dtrain-install-")
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        bindir = os.path.join(prefix, "bin")
        share = os.path.join(prefix, "share", "dtrain")
        for f in ("bin/dtrain-coordinator", "bin/dtrain-worker", "bin/dtrain", "bin/dtrain-pack",
                  "share/dtrain/jobs/quickstart.yaml",
                  "share/dtrain/systemd/dtrain-coordinator.service", "share/dtrain/grafana/dtrain.json",
                  "share/doc/dtrain/README.md"):
            self.assertTrue(os.path.exists(os.path.join(prefix, f)), f)
        with open(os.path.join(share, "systemd", "dtrain-coordinator.service")) as f:
            unit = f.read()
        self.assertIn(f"ExecStart={bindir}/dtrain-coordinator", unit)
        self.assertIn("--state-dir", unit)

        run = tempfile.mkdtemp(prefix="dtrain-install-run-")
        env = dict(os.environ, UCX_NET_DEVICES="lo")
        env.pop("DTRAIN_BIN", None)
        port = free_port()
        addr = f"127.0.0.1:{port}"
        procs = []

        def spawn(name, argv):
            with open(os.path.join(run, name + ".log"), "wb") as log:
                procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))

        try:
            spawn("coordinator", [f"{bindir}/dtrain-coordinator", "--listen", addr, "--state-dir",
                                  os.path.join(run, "state")])
            spawn("worker", [f"{bindir}/dtrain-worker", "--coordinator", addr, "--blas-threads", "1",
                             "--log-dir", os.path.join(run, "mllog")])

            def cli(*args, timeout=60):
                return subprocess.run([f"{bindir}/dtrain", "--coordinator", addr, *args], capture_output=True,
                                      text=True, timeout=timeout, env=env)

            wait_for(lambda: '"IDLE"' in cli("workers", "--json").stdout, 30, "the installed worker to register")
            r = cli("submit", os.path.join(share, "jobs", "quickstart.yaml"), "--set", "workers=1",
                    "--set", "max_steps=3", "--set", "dataset.train_limit=1024", "--set", "dataset.test_limit=256",
                    "--wait", timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            status = cli("status", r.stdout.strip()).stdout
            self.assertIn("SUCCEEDED", status)
        except AssertionError:
            for name in ("coordinator", "worker"):
                with open(os.path.join(run, name + ".log"), errors="replace") as f:
                    print(f"----- {name} log -----\n{f.read()[-3000:]}")
            raise
        finally:
            for p in procs:
                p.kill()
                p.wait(10)


if __name__ == "__main__":
    unittest.main()
