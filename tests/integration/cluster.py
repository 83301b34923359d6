"""A real dtrain cluster on loopback for integration tests: one coordinator,
N workers and the CLI, as separate processes. Every wait has a deadline and
every process is killed on exit, so a failing test never hangs or leaks."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time

BIN = os.environ.get("DTRAIN_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns a truthy value or `timeout` passes."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what} (last: {last!r})")


def free_port():
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


class Cluster:
    def __init__(self, workers=0, heartbeat_timeout=3.0, coordinator_args=(), worker_args=(),
                 cli_args=()):
        self.dir = tempfile.mkdtemp(prefix="dtrain-it-")
        self.cli_args = list(cli_args)  # e.g. --ca / --token-file for a secured coordinator
        self.env = dict(os.environ, UCX_NET_DEVICES="lo")
        self.procs = []
        self.workers = []
        self.worker_args = list(worker_args)
        self.coordinator_args = ["--heartbeat-timeout", str(heartbeat_timeout),
                                 "--heartbeat-interval", "0.5", *coordinator_args]
        self.coordinator_starts = 0
        self.port = 0
        self.start_coordinator()
        self.address = f"127.0.0.1:{self.port}"
        for i in range(workers):
            self.add_worker(i)
        if workers:
            self.wait_idle(workers)

    def start_coordinator(self, listen_host="127.0.0.1"):
        """Starts the coordinator (again: on the same port, its log in coordinator-N.log)."""
        port_file = os.path.join(self.dir, f"port-{self.coordinator_starts}")
        name = "coordinator" if self.coordinator_starts == 0 else f"coordinator-{self.coordinator_starts}"
        self.coordinator_starts += 1
        self.coordinator = self._spawn(
            name, [f"{BIN}/dtrain-coordinator", "--listen", f"{listen_host}:{self.port}",
                   "--port-file", port_file, *self.coordinator_args])
        self.port = int(wait_for(lambda: _read(port_file), 15, "the coordinator to listen"))
        return self.coordinator

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                             start_new_session=True)
        log.close()  # the child holds its own copy
        p.name = name
        self.procs.append(p)
        return p

    def add_worker(self, local_rank, extra=()):
        p = self._spawn(f"worker{local_rank}",
                        [f"{BIN}/dtrain-worker", "--coordinator", self.address, "--local-rank",
                         str(local_rank), "--blas-threads", "1", *self.worker_args, *extra])
        self.workers.append(p)
        return p

    def cli(self, *args, timeout=60, check=False):
        r = subprocess.run([f"{BIN}/dtrain", "--coordinator", self.address, *self.cli_args, *args],
                           capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"dtrain {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def json(self, *args):
        return json.loads(self.cli(*args, "--json", check=True).stdout)

    def workers_by_state(self):
        out = {}
        for w in self.json("workers"):
            out.setdefault(w["state"], []).append(w)
        return out

    def wait_idle(self, n, timeout=20):
        return wait_for(lambda: len(self.workers_by_state().get("IDLE", [])) >= n, timeout,
                        f"{n} idle workers")

    def job(self, job_id):
        return self.json("status", job_id)

    def wait_step(self, job_id, step, timeout):
        """Waits until the job's rank 0 has finished `step` steps; returns the job."""
        return wait_for(lambda: (lambda j: j if int(j.get("step", 0)) >= step else None)(self.job(job_id)),
                        timeout, f"job {job_id} to reach step {step}")

    def wait_state(self, job_id, states, timeout):
        return wait_for(lambda: (lambda j: j if j["state"] in states else None)(self.job(job_id)),
                        timeout, f"job {job_id} to reach {states}")

    def write_spec(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def log(self, name):
        with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
            return f.read()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            for p in self.procs:  # show what the processes said when a test fails
                print(f"----- {p.name} log -----\n{self.log(p.name)[-4000:]}")
        self.close()
