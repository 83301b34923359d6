"""The secured control plane, with real processes: a coordinator serving TLS
(a throw-away CA and server certificate for 127.0.0.1/localhost made with
openssl) with a client token and a join token, a real worker with --ca and the
join token, and the CLI.

For EVERY Coordinator RPC (raw gRPC calls with hand-encoded protobuf bytes, so
nothing of ours sits between the test and the server): a missing, malformed or
wrong token gets UNAUTHENTICATED, a valid token of the other role gets
PERMISSION_DENIED, and nothing changes (job list, job state, worker list);
the right token works. The health service stays open. A client without --ca
(or with another CA) fails with a clear error; the CLI with the right token
runs an allreduce-bench job end to end over TLS; wrong tokens give exit code
6; bad files are named; and the token strings appear in no log, no
`status --json` and no /metrics output."""

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import unittest
import urllib.request

from cluster import BIN, Cluster, free_port, wait_for

CLIENT_TOKEN = "ct-" + secrets.token_hex(16)
JOIN_TOKEN = "jt-" + secrets.token_hex(16)
WRONG_TOKEN = "wrong-" + secrets.token_hex(16)
SVC = "/dtrain.v1.Coordinator/"
CLIENT_RPCS = ("SubmitJob", "GetJob", "ListJobs", "CancelJob", "WatchJob", "ListWorkers")


# ---- minimal protobuf wire format (no generated Python stubs needed) ----

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_bytes(field, data):
    data = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def pb_int(field, n):
    return _varint(field << 3) + _varint(n)


def pb_fields(data):
    """Top-level fields: {number: [value, ...]} (length-delimited ones as bytes)."""
    out, i = {}, 0

    def varint():
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 2:
            n = varint()
            value, i = data[i:i + n], i + n
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(field, []).append(value)
    return out


def make_certs(d):
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and an
    unrelated second CA."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=dtrain test CA")
    run("req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2",
        "-subj", "/CN=some other CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


class Auth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dtrain-auth-")
        make_certs(cls.tmp)
        p = lambda name: os.path.join(cls.tmp, name)  # noqa: E731
        cls.ca, cls.other_ca, cls.cert, cls.key = p("ca.pem"), p("other-ca.pem"), p("server.pem"), p("server.key")
        cls.client_token_file = write_secret(p("client.token"), CLIENT_TOKEN)
        cls.join_token_file = write_secret(p("join.token"), JOIN_TOKEN)
        cls.wrong_token_file = write_secret(p("wrong.token"), WRONG_TOKEN)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def secured(self, workers=1, metrics_port=None):
        coord = ["--tls-cert", self.cert, "--tls-key", self.key,
                 "--client-token-file", self.client_token_file,
                 "--join-token-file", self.join_token_file]
        if metrics_port:
            coord += ["--metrics", f"127.0.0.1:{metrics_port}"]
        c = Cluster(workers=0, coordinator_args=coord,
                    worker_args=["--ca", self.ca, "--join-token-file", self.join_token_file],
                    cli_args=["--ca", self.ca, "--token-file", self.client_token_file])
        try:
            for i in range(workers):
                c.add_worker(i)
            if workers:
                c.wait_idle(workers)
        except BaseException:
            c.__exit__(AssertionError, None, None)
            raise
        return c

    def channel(self, c, ca=None):
        import grpc  # Debian's python3-grpcio
        with open(ca or self.ca, "rb") as f:
            return grpc.secure_channel(c.address, grpc.ssl_channel_credentials(root_certificates=f.read()))

    # One raw call of `rpc` with `md` (a list of metadata pairs). Returns
    # (status code, response bytes or the first streamed message).
    def call(self, ch, rpc, md, request=b""):
        import grpc
        ident = lambda b: b  # noqa: E731
        try:
            if rpc in ("WatchJob", "GetJobLogs"):
                it = ch.unary_stream(SVC + rpc, request_serializer=ident,
                                     response_deserializer=ident)(request, metadata=md, timeout=10)
                first = next(it)
                it.cancel()
                return grpc.StatusCode.OK, first
            if rpc == "WorkerSession":
                done = threading.Event()

                def messages():
                    yield request
                    done.wait(10)  # keep the stream open until the answer came
                it = ch.stream_stream(SVC + rpc, request_serializer=ident,
                                      response_deserializer=ident)(messages(), metadata=md, timeout=10)
                try:
                    first = next(it)
                finally:
                    done.set()
                it.cancel()
                return grpc.StatusCode.OK, first
            resp = ch.unary_unary(SVC + rpc, request_serializer=ident,
                                  response_deserializer=ident)(request, metadata=md, timeout=10)
            return grpc.StatusCode.OK, resp
        except grpc.RpcError as e:
            return e.code(), e.details()

    def snapshot(self, c):
        jobs = [(j["id"], j["state"]) for j in c.json("list")]
        workers = sorted((w["id"], w["host"], w["state"]) for w in c.json("workers"))
        return jobs, workers

    def test_every_rpc_needs_its_roles_token(self):
        import grpc
        with self.secured(workers=1) as c, self.channel(c) as ch:
            # A job that stays QUEUED (2 workers asked, 1 present): the target of
            # GetJob/CancelJob/WatchJob.
            spec_yaml = "kind: allreduce-bench\nworkers: 2\n"
            queued = c.cli("submit", c.write_spec("q.yaml", spec_yaml), check=True).stdout.strip()
            requests = {
                "SubmitJob": pb_bytes(1, "kind: allreduce-bench\nworkers: 1\n"),
                "GetJob": pb_bytes(1, queued),
                "ListJobs": b"",
                "CancelJob": pb_bytes(1, queued),
                "WatchJob": pb_bytes(1, queued),
                "GetJobLogs": pb_bytes(1, queued),
                "ListWorkers": b"",
                "WorkerSession": pb_bytes(1, pb_bytes(1, "rogue-host") + pb_int(6, 4242)),
            }
            bearer = lambda t: [("authorization", f"Bearer {t}")]  # noqa: E731
            wrong_credentials = {
                "missing": [],
                "wrong token": bearer(WRONG_TOKEN),
                "empty bearer": [("authorization", "Bearer ")],
                "no scheme": [("authorization", CLIENT_TOKEN)],
                "basic scheme": [("authorization", f"Basic {JOIN_TOKEN}")],
                "token prefix": bearer(CLIENT_TOKEN[:-1]),
            }
            before = self.snapshot(c)
            self.assertEqual(before[0], [(queued, "QUEUED")])
            for rpc, req in requests.items():
                other = JOIN_TOKEN if rpc != "WorkerSession" else CLIENT_TOKEN
                role = "worker" if rpc == "WorkerSession" else "client"
                for what, md in wrong_credentials.items():
                    code, details = self.call(ch, rpc, md, req)
                    self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, f"{rpc} with {what}: {details}")
                    self.assertEqual(details, f"missing or invalid bearer token for {role} RPC {rpc}")
                    self.assertEqual(self.snapshot(c), before, f"{rpc} with {what} changed something")
                code, details = self.call(ch, rpc, bearer(other), req)
                self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED, f"{rpc} with the other role's token")
                self.assertIn(rpc, details)
                self.assertNotIn(other, details)
                self.assertEqual(self.snapshot(c), before, f"{rpc} with the other role's token changed something")

            # The right token works, for every RPC.
            ok = grpc.StatusCode.OK
            code, resp = self.call(ch, "GetJob", bearer(CLIENT_TOKEN), requests["GetJob"])
            self.assertEqual((code, pb_fields(resp)[1][0].decode()), (ok, queued))
            code, resp = self.call(ch, "ListJobs", bearer(CLIENT_TOKEN))
            self.assertEqual(code, ok)
            self.assertEqual([pb_fields(j)[1][0].decode() for j in pb_fields(resp)[1]], [queued])
            code, resp = self.call(ch, "ListWorkers", bearer(CLIENT_TOKEN))
            self.assertEqual((code, len(pb_fields(resp)[1])), (ok, 1))
            code, resp = self.call(ch, "WatchJob", bearer(CLIENT_TOKEN), requests["WatchJob"])
            self.assertEqual((code, pb_fields(pb_fields(resp)[1][0])[1][0].decode()), (ok, queued))
            code, resp = self.call(ch, "GetJobLogs", bearer(CLIENT_TOKEN), requests["GetJobLogs"])
            self.assertEqual(code, ok, resp)
            self.assertIn(b"is QUEUED and has no ranks yet", pb_fields(resp)[2][0])  # JobLogsChunk.notes
            code, resp = self.call(ch, "CancelJob", bearer(CLIENT_TOKEN), requests["CancelJob"])
            self.assertEqual((code, pb_fields(resp)[4][0]), (ok, 5))  # state CANCELLED
            code, resp = self.call(ch, "SubmitJob", bearer(CLIENT_TOKEN), requests["SubmitJob"])
            self.assertEqual(code, ok)
            submitted = pb_fields(pb_fields(resp)[1][0])[1][0].decode()
            self.assertEqual(c.json("status", submitted)["id"], submitted)
            c.wait_state(submitted, ("SUCCEEDED",), 60)
            # WorkerSession with the join token: registered (the real worker,
            # too, registered with it, over TLS).
            code, resp = self.call(ch, "WorkerSession", bearer(JOIN_TOKEN), requests["WorkerSession"])
            self.assertEqual(code, ok, resp)
            self.assertTrue(pb_fields(pb_fields(resp)[1][0])[1][0].decode())  # Registered.worker_id
            self.assertIn("rogue-host", [w["host"] for w in c.json("workers")])

            # Health stays open (no token) over TLS: SERVING.
            check = ch.unary_unary("/grpc.health.v1.Health/Check",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
            self.assertEqual(check(b"", timeout=10), b"\x08\x01")

    def test_cli_over_tls_with_tokens_and_no_token_leaks(self):
        metrics_port = free_port()
        with self.secured(workers=1, metrics_port=metrics_port) as c:
            plain = [f"{BIN}/dtrain", "--coordinator", c.address, "--timeout", "5"]
            run = lambda *a, env=None: subprocess.run(  # noqa: E731
                [*plain, *a], capture_output=True, text=True, timeout=60,
                env=dict(c.env, **(env or {})))

            # No --ca against the TLS server: a clear error that points at --ca.
            r = run("--token-file", self.client_token_file, "list")
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn(f"cannot reach the coordinator at {c.address}", r.stderr)
            self.assertIn("give --ca FILE or DTRAIN_CA", r.stderr)
            # Another CA: refused as well, and the message asks about the CA.
            r = run("--ca", self.other_ca, "--token-file", self.client_token_file, "list")
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn("does --ca hold the CA that signed its certificate", r.stderr)

            # Over TLS: no token, a wrong token, the join token -> exit 6.
            r = run("--ca", self.ca, "list")
            self.assertEqual(r.returncode, 6, r.stderr)
            self.assertIn("not authorized", r.stderr)
            self.assertIn("missing or invalid bearer token for client RPC ListJobs", r.stderr)
            self.assertIn("--token-file", r.stderr)
            r = run("--ca", self.ca, "--token-file", self.wrong_token_file, "workers")
            self.assertEqual(r.returncode, 6, r.stderr)
            r = run("--ca", self.ca, "--token-file", self.join_token_file, "submit",
                    c.write_spec("one.yaml", "kind: allreduce-bench\nworkers: 1\n"))
            self.assertEqual(r.returncode, 6, r.stderr)
            self.assertIn("permission denied", r.stderr)
            self.assertEqual(c.json("list"), [], "a refused submit created a job")

            # The right token (here from the environment, CA too): a short
            # allreduce-bench job end to end over TLS.
            spec = c.write_spec("bench.yaml", "name: tls-bench\nkind: allreduce-bench\nworkers: 1\n"
                                "bench: {min_bytes: 1024, max_bytes: 65536, iterations: 3}\n")
            r = run("submit", spec, "--wait", env={"DTRAIN_CA": self.ca, "DTRAIN_CLIENT_TOKEN": CLIENT_TOKEN})
            self.assertEqual(r.returncode, 0, r.stderr)
            job_id = r.stdout.strip()
            self.assertRegex(job_id, r"^job-\d+$")
            self.assertEqual(c.cli("watch", job_id).returncode, 0)  # with the token file

            # The tokens appear nowhere: logs, status --json, list, workers, /metrics.
            outputs = {
                "status --json": c.cli("status", job_id, "--json", check=True).stdout,
                "status": c.cli("status", job_id, check=True).stdout,
                "list --json": c.cli("list", "--json", check=True).stdout,
                "workers --json": c.cli("workers", "--json", check=True).stdout,
                "/metrics": http_get(f"http://127.0.0.1:{metrics_port}/metrics"),
                "coordinator log": c.log("coordinator"),
                "worker log": c.log("worker0"),
            }
            self.assertIn("rejected ListJobs", outputs["coordinator log"])  # refusals are logged...
            for where, text in outputs.items():
                for secret in (CLIENT_TOKEN, JOIN_TOKEN, WRONG_TOKEN):  # ...without the token
                    self.assertNotIn(secret, text, f"a token leaked into {where}")
            self.assertIn("client_token=file", outputs["coordinator log"])

    def test_worker_with_a_wrong_join_token_is_refused_and_says_why(self):
        with self.secured(workers=0) as c:
            c.worker_args = ["--ca", self.ca]
            c.add_worker(0, extra=["--join-token-file", self.wrong_token_file])
            wait_for(lambda: "refused this worker" in c.log("worker0"), 20, "the refusal in the worker log")
            self.assertIn("missing or invalid bearer token for worker RPC WorkerSession", c.log("worker0"))
            self.assertIn("--join-token-file", c.log("worker0"))
            self.assertEqual(c.json("workers"), [])
            self.assertNotIn(WRONG_TOKEN, c.log("worker0") + c.log("coordinator"))

    def test_bad_files_are_named_and_unsafe_setups_warned(self):
        missing = os.path.join(self.tmp, "no-such-file.pem")

        def start(binary, *args):
            return subprocess.run([f"{BIN}/{binary}", *args], capture_output=True, text=True, timeout=30)

        r = start("dtrain-coordinator", "--listen", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", self.key)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--tls-cert '{missing}'", r.stderr)
        r = start("dtrain-coordinator", "--listen", "127.0.0.1:0", "--tls-cert", self.cert)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls-key", r.stderr)
        r = start("dtrain-coordinator", "--listen", "127.0.0.1:0", "--client-token-file", missing)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--client-token-file '{missing}'", r.stderr)
        r = start("dtrain-coordinator", "--listen", "127.0.0.1:0", "--client-token-file",
                  self.client_token_file, "--join-token-file", self.client_token_file)
        self.assertEqual(r.returncode, 2)
        self.assertIn("the same", r.stderr)
        self.assertNotIn(CLIENT_TOKEN, r.stderr)
        r = start("dtrain-worker", "--coordinator", "127.0.0.1:1", "--ca", missing)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--ca '{missing}'", r.stderr)
        r = start("dtrain-worker", "--coordinator", "127.0.0.1:1", "--ca", self.client_token_file)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a PEM file", r.stderr)
        r = start("dtrain", "--token-file", missing, "list")
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--token-file '{missing}'", r.stderr)
        r = start("dtrain", "--ca", missing, "list")
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--ca '{missing}'", r.stderr)

        # The loopback quickstart without tokens still works, with one warning;
        # a non-loopback address without TLS is warned about too.
        with Cluster(workers=0) as c:
            self.assertEqual(c.json("list"), [])
            self.assertEqual(c.log("coordinator").count("no tokens configured: the control plane accepts "
                                                        "any client and worker"), 1)
            self.assertNotIn("without TLS", c.log("coordinator"))
        log_path = os.path.join(self.tmp, "any-address.log")
        with open(log_path, "wb") as log:
            p = subprocess.Popen([f"{BIN}/dtrain-coordinator", "--listen", "0.0.0.0:0",
                                  "--client-token-file", self.client_token_file],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def read():
                with open(log_path, errors="replace") as f:
                    return f.read()
            wait_for(lambda: "serving dtrain.v1.Coordinator" in read(), 15, "the coordinator to listen")
            self.assertIn("listening on 0.0.0.0:0 without TLS", read())
            self.assertIn("no join token configured", read())
            self.assertNotIn(CLIENT_TOKEN, read())
        finally:
            p.kill()
            p.wait(timeout=10)


if __name__ == "__main__":
    unittest.main()
