#!/usr/bin/env python3
"""Tests of the scaling model: allreduce times against alpha-beta values derived by hand for
tiny layouts, the bucket plan against worker/engine's PlanBuckets test cases, the overlap
arithmetic, monotonicity, and hierarchical == ring where the schedules coincide.

  /usr/bin/python3 bench/scaling/test_model.py -v
"""
import csv
import io
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bucket_plan import make_plan, plan_buckets  # noqa: E402
from collectives import allreduce_seconds, busbw_Bps, layout, phases  # noqa: E402
from network import Link, Network  # noqa: E402
from overlap import simulate_step  # noqa: E402
from step_profile import Profile  # noqa: E402
import median_rows  # noqa: E402
import model  # noqa: E402

A_I, B_I = 2e-6, 40e9      # intra: alpha, bandwidth
A_E, B_E = 10e-6, 5e9      # inter: alpha, bandwidth per NIC
S = 8 * 2**20


def net(gpus_per_node, nics=1, reduce_Bps=None):
    return Network("t", gpus_per_node, nics, Link(A_I, B_I), Link(A_E, B_E), reduce_Bps)


def profile(layers, forward_s=0.01, optimizer_s=0.0, batch=32, dtype="fp32"):
    """layers: [(backward_s, [elems, ...])] in backward order."""
    return Profile.from_dict({"batch": batch, "forward_s": forward_s, "optimizer_s": optimizer_s,
                              "grad_dtype": dtype, "layers": [
                                  {"name": f"l{i}", "backward_s": b,
                                   "tensors": [{"name": f"l{i}.t{j}", "elems": e}
                                               for j, e in enumerate(ts)]}
                                  for i, (b, ts) in enumerate(layers)]})


class AllreduceTimeMatchesHandDerivedAlphaBeta(unittest.TestCase):
    def test_two_ranks_one_host(self):
        # 2 steps (reduce-scatter, all-gather) of S/2 over the intra link: 2*alpha + S/beta.
        self.assertAlmostEqual(allreduce_seconds(net(8), "ring", 2, S), 2 * A_I + S / B_I, places=12)

    def test_n_ranks_one_host(self):
        # 2(n-1) steps of S/n: 2(n-1)*alpha + S/beta * 2(n-1)/n.
        for n in (3, 4, 8):
            want = 2 * (n - 1) * A_I + S / B_I * 2 * (n - 1) / n
            self.assertAlmostEqual(allreduce_seconds(net(8), "ring", n, S), want, places=12)

    def test_two_hosts_one_rank_each_uses_every_nic(self):
        # One flow leaves each node per step; it gets both NICs: 2*(alpha_e + (S/2)/(2*B_E)).
        self.assertAlmostEqual(allreduce_seconds(net(1, nics=2), "ring", 2, S),
                               2 * (A_E + S / 2 / (2 * B_E)), places=12)

    def test_reduction_bandwidth_adds_to_reduce_scatter_steps_only(self):
        # 2 ranks: the one reduce-scatter step also sums S/2 bytes at reduce_Bps.
        r = 10e9
        self.assertAlmostEqual(allreduce_seconds(net(8, reduce_Bps=r), "ring", 2, S),
                               2 * A_I + S / B_I + S / 2 / r, places=12)

    def test_flat_ring_across_two_hosts_of_two_is_paced_by_the_node_link(self):
        # 4 ranks, 6 steps of S/4; per step the slowest edge is the one leaving a node.
        step = max(A_I + S / 4 / B_I, A_E + S / 4 / B_E)
        self.assertAlmostEqual(allreduce_seconds(net(2), "ring", 4, S), 6 * step, places=12)

    def test_hierarchical_two_hosts_of_two(self):
        # intra RS: 1 step of S/2; 2 inter rings (one per local rank) share the NIC, each
        # allreduces S/2 across 2 hosts: 2 steps of S/4 at B_E/2; intra AG: 1 step of S/2.
        want = 2 * (A_I + S / 2 / B_I) + 2 * (A_E + S / 4 / (B_E / 2))
        self.assertAlmostEqual(allreduce_seconds(net(2), "hierarchical", 4, S), want, places=12)

    def test_busbw_of_two_ranks_is_algbw(self):
        t = allreduce_seconds(net(8), "ring", 2, S)
        self.assertAlmostEqual(busbw_Bps(net(8), "ring", 2, S), S / t, delta=1e-6 * S / t)


class HierarchicalEqualsRingWhereTheSchedulesCoincide(unittest.TestCase):
    def test_one_gpu_per_node(self):
        for n in (2, 3, 16, 512):
            self.assertAlmostEqual(allreduce_seconds(net(1, nics=2), "hierarchical", n, S),
                                   allreduce_seconds(net(1, nics=2), "ring", n, S), places=12)

    def test_one_host(self):
        for n in (2, 4, 8):
            self.assertAlmostEqual(allreduce_seconds(net(8), "hierarchical", n, S),
                                   allreduce_seconds(net(8), "ring", n, S), places=12)


class Monotonicity(unittest.TestCase):
    def test_time_grows_with_bytes(self):
        for algo in ("ring", "hierarchical"):
            times = [allreduce_seconds(net(4, 2), algo, 64, s) for s in (1e3, 1e5, 1e7, 1e9)]
            self.assertEqual(times, sorted(times))
            self.assertLess(times[0], times[-1])

    def test_step_time_grows_and_efficiency_falls_with_world(self):
        p = profile([(0.002, [1 << 20]), (0.003, [1 << 21]), (0.004, [1 << 22])])
        for algo in ("ring", "hierarchical"):
            prev = None
            for w in (1, 4, 8, 16, 64, 256, 1024):
                s = simulate_step(p, make_plan(p, "engine:4"), net(4, 2), w, algo)
                self.assertLessEqual(s.efficiency, 1.0)
                if prev:
                    self.assertGreaterEqual(s.step_s, prev.step_s)
                prev = s

    def test_slower_link_never_speeds_a_step(self):
        p = profile([(0.002, [1 << 20]), (0.003, [1 << 22])])
        fast = simulate_step(p, make_plan(p, "engine:1"), net(4, 2), 64, "ring")
        slow = simulate_step(p, make_plan(p, "engine:1"), net(4, 2).with_inter(gbit=1), 64, "ring")
        self.assertGreater(slow.step_s, fast.step_s)


class OverlapArithmetic(unittest.TestCase):
    def test_one_bucket_ready_at_the_end_is_fully_exposed(self):
        p = profile([(0.004, []), (0.006, [1 << 20])], forward_s=0.003, optimizer_s=0.001)
        b = make_plan(p, "engine:100")
        t = allreduce_seconds(net(8), "ring", 8, 4 << 20)
        s = simulate_step(p, b, net(8), 8, "ring")
        self.assertEqual(len(b), 1)
        self.assertAlmostEqual(s.step_s, 0.003 + 0.010 + t + 0.001, places=12)
        self.assertAlmostEqual(s.exposed_s, t, places=12)
        self.assertAlmostEqual(s.efficiency, 0.014 / s.step_s, places=12)

    def test_early_bucket_hides_behind_backward_and_buckets_queue(self):
        # Bucket 0 ready at 1 ms; bucket 1 at 2 ms waits for bucket 0 to finish; both end
        # before backward's 100 ms: nothing exposed. Then a 3rd bucket at the very end.
        p = profile([(0.001, [1 << 22]), (0.001, [1 << 22]), (0.098, [])])
        s = simulate_step(p, make_plan(p, "engine:16"), net(2), 4, "ring")
        self.assertAlmostEqual(s.exposed_s, 0.0, places=15)
        p2 = profile([(0.001, [1 << 22]), (0.001, [1 << 22]), (0.001, [1 << 22])])
        t = allreduce_seconds(net(2), "ring", 4, 16 << 20)
        s2 = simulate_step(p2, make_plan(p2, "engine:16"), net(2), 4, "ring")
        # ends: 1ms+t, max(2ms, 1ms+t)+t, max(3ms, that)+t; backward ends at 3 ms.
        e = 0.001 + t
        e = max(0.002, e) + t
        e = max(0.003, e) + t
        self.assertAlmostEqual(s2.step_s, 0.01 + e, places=12)

    def test_world_one_has_no_communication(self):
        p = profile([(0.002, [1000])])
        s = simulate_step(p, make_plan(p, "engine:4"), net(8), 1, "ring")
        self.assertEqual((s.comm_s, s.exposed_s, s.efficiency), (0.0, 0.0, 1.0))


class SharedMachineClusterBounds(unittest.TestCase):
    """shared_cores / tcp_cpu_s_per_byte / comm_overlaps_compute: the simulated cluster, where
    every rank is a process on one machine's cores."""
    K = 1e-9  # CPU s per TCP byte and side

    def shared(self, gpus_per_node, cores=2, k=K, **kw):
        return replace(net(gpus_per_node, **kw), shared_cores=cores, tcp_cpu_s_per_byte=k)

    def test_phases_count_each_ranks_tcp_sides_and_shm_receives(self):
        # ring 2x2: 0->1 shm, 1->2 TCP, 2->3 shm, 3->0 TCP. Rank 0: TCP in; 1: shm in + TCP
        # out; 2: TCP in; 3: shm in + TCP out. Same pattern on 4 hosts.
        for world in (4, 8):
            self.assertEqual({p.loads for p in phases("ring", world, 2)}, {((1, 0), (1, 1))})
        # hierarchical 2x2: intra rings of 2 (each rank receives over shm), then rings across
        # hosts where every rank sends and receives over TCP.
        self.assertEqual([p.loads for p in phases("hierarchical", 4, 2)],
                         [((0, 1),), ((2, 0),), ((2, 0),), ((0, 1),)])
        self.assertEqual([p.world for p in phases("hierarchical", 8, 2)], [8] * 4)
        self.assertEqual({p.loads for p in phases("ring", 4, 8)}, {((0, 1),)})

    def test_two_hosts_one_rank_each_is_bound_by_the_tcp_work(self):
        # world 2 on 2 cores: f = 1; each step a rank sends and receives S/2: 2K x S/2.
        n = self.shared(1)
        self.assertAlmostEqual(allreduce_seconds(n, "ring", 2, S),
                               2 * max(A_E + S / 2 / B_E, 2 * self.K * S / 2), places=12)
        self.assertGreater(2 * self.K * S / 2, A_E + S / 2 / B_E)  # the CPU term binds here

    def test_ring_of_two_hosts_of_two_shares_two_cores(self):
        # f = 4/2 = 2; busiest rank: one TCP side + one shm receive of c = S/4.
        c = S / 4
        step = max(A_E + c / B_E, A_I + c / B_I, 2 * c * (self.K + 1 / B_I))
        self.assertAlmostEqual(allreduce_seconds(self.shared(2), "ring", 4, S), 6 * step,
                               places=12)

    def test_ring_of_four_hosts_slows_the_reduction_too(self):
        # f = 8/2 = 4; reduce-scatter steps add f x c / R, all-gather steps do not.
        r, c = 10e9, S / 8
        n = self.shared(2, reduce_Bps=r)
        step = max(A_E + c / B_E, A_I + c / B_I, 4 * c * (self.K + 1 / B_I))
        self.assertAlmostEqual(allreduce_seconds(n, "ring", 8, S), 14 * step + 7 * 4 * c / r,
                               places=12)

    def test_hierarchical_two_hosts_of_two(self):
        # f = 2. intra: each rank receives S/2 over shm; inter: 2 rings share the NIC, each
        # rank sends and receives S/4 over TCP.
        intra = max(A_I + S / 2 / B_I, 2 * (S / 2) / B_I)
        inter = max(A_E + S / 4 / (B_E / 2), 2 * 2 * self.K * S / 4)
        self.assertAlmostEqual(allreduce_seconds(self.shared(2), "hierarchical", 4, S),
                               2 * intra + 2 * inter, places=12)

    def test_free_tcp_and_a_core_per_rank_change_nothing(self):
        # k = 0 and cores >= world: the bound is one shm copy, already in the intra edge.
        for algo, world in (("ring", 8), ("hierarchical", 8), ("ring", 2)):
            self.assertAlmostEqual(allreduce_seconds(self.shared(2, cores=64, k=0.0), algo,
                                                     world, S),
                                   allreduce_seconds(net(2), algo, world, S), places=12)

    def test_real_networks_leave_the_shared_fields_unset(self):
        for name in ("abci-v100-2xedr", "h200-ndr"):
            n = Network.load(name)
            self.assertEqual((n.shared_cores, n.tcp_cpu_s_per_byte, n.comm_overlaps_compute),
                             (None, None, True))
            self.assertEqual(n.compute_slowdown(2048), 1.0)

    def test_unshaped_link_leaves_only_the_cpu_bound(self):
        n = self.shared(1).with_inter(gbit=0)
        self.assertEqual(n.inter.bandwidth_Bps, float("inf"))
        # per step max(alpha_e + (S/2)/inf, 2 sides x K x S/2)
        self.assertAlmostEqual(allreduce_seconds(n, "ring", 2, S), 2 * max(A_E, self.K * S),
                               places=12)
        with self.assertRaises(ValueError):
            net(1).with_inter(gbit=-1)

    def test_shared_cores_slow_compute_by_world_over_cores(self):
        p = profile([(0.004, []), (0.006, [1 << 20])], forward_s=0.003, optimizer_s=0.001)
        b = make_plan(p, "engine:100")
        n = replace(net(2), shared_cores=2)
        t = allreduce_seconds(n, "ring", 8, 4 << 20)
        s = simulate_step(p, b, n, 8, "ring")  # f = 8 / 2 = 4; the bucket is ready at the end
        self.assertAlmostEqual(s.step_s, 4 * (0.003 + 0.010 + 0.001) + t, places=12)
        self.assertAlmostEqual(s.exposed_s, t, places=12)
        self.assertAlmostEqual(s.efficiency, 0.014 / s.step_s, places=12)
        self.assertEqual(n.compute_slowdown(1), 1.0)

    def test_no_overlap_puts_every_allreduce_after_backward(self):
        # Buckets ready at 1 and 2 ms of a 100 ms backward would hide (test above); without
        # overlap they run after it: step = fwd + bwd + t1 + t2 (+ third, empty layer).
        p = profile([(0.001, [1 << 22]), (0.001, [1 << 22]), (0.098, [])])
        n = replace(net(2), comm_overlaps_compute=False)
        b = make_plan(p, "engine:16")
        ts = [allreduce_seconds(n, "ring", 4, x.wire_bytes) for x in b]
        s = simulate_step(p, b, n, 4, "ring")
        self.assertAlmostEqual(s.step_s, 0.01 + 0.1 + sum(ts), places=12)
        s2 = simulate_step(p, b, n, 4, "ring", compute_scale=3.0)
        self.assertAlmostEqual(s2.step_s, 3 * (0.01 + 0.1) + sum(ts), places=12)

    def test_network_json_refuses_bad_shared_fields(self):
        d = {"gpus_per_node": 2, "nics_per_node": 1, "intra": {"alpha_s": 0, "bandwidth_Bps": 1},
             "inter": {"alpha_s": 0, "bandwidth_Bps": 1}}
        n = Network.from_dict(dict(d, shared_cores=2, tcp_cpu_s_per_byte=7e-10,
                                   comm_overlaps_compute=False))
        self.assertEqual((n.shared_cores, n.tcp_cpu_s_per_byte, n.comm_overlaps_compute),
                         (2, 7e-10, False))
        for bad in ({"tcp_cpu_s_per_byte": -1}, {"shared_cores": 0}):
            with self.assertRaises(ValueError):
                Network.from_dict(dict(d, **bad))


class BucketPlanIsTheEnginesPlan(unittest.TestCase):
    """The cases of tests/unit/engine_overlap_test.cc, against the Python port."""

    def test_one_group_keeps_the_reverse_layer_order(self):
        t = [(0, 100, 0), (100, 50, 0), (150, 300, 0), (450, 10, 0), (460, 1000, 0)]
        p = plan_buckets(t, 300 * 4 / 1048576.0, [4])
        self.assertEqual([b.tensors for b in p], [[4], [3, 2], [1, 0]])
        self.assertEqual((p[1].offset, p[1].count), (150, 310))

    def test_resnet50_cuda_plan_groups(self):
        prof = Profile.load(os.path.join(HERE, "profiles", "resnet50_cpu_b8.json"))
        self.assertEqual(len(prof.tensors_backward), 161)
        self.assertEqual(sum(t.elems for t in prof.tensors_backward), 25557032)
        buckets = make_plan(prof, "cuda:4")
        fp32 = [b for b in buckets if b.group == 1]
        self.assertEqual(len(fp32), 1)                      # the BN/bias group: one bucket
        self.assertTrue(8 <= len(buckets) - 1 <= 13)         # 48.7 MiB fp16 in >= 4 MiB
        self.assertEqual(sum(b.tensors for b in buckets), 161)
        ready = [b.ready_s for b in buckets]
        self.assertEqual(ready, sorted(ready))               # completion order

    def test_bad_input_is_refused(self):
        for args in (([], 4, [4]), ([(0, 10, 0)], 0, [4]), ([(0, 10, 1)], 4, [4]),
                     ([(0, 10, 0), (5, 10, 0)], 4, [4])):
            with self.assertRaises(ValueError):
                plan_buckets(*args)

    def test_fixed_groups_count_tensors_in_backward_order(self):
        p = profile([(0.001, [10, 20]), (0.002, [30]), (0.003, [40, 50])], dtype="fp16")
        b = make_plan(p, "fixed:1,2,2")
        self.assertEqual([x.wire_bytes for x in b], [20, 2 * 50, 2 * 90])
        self.assertAlmostEqual(b[1].ready_s, 0.003, places=12)  # l0.t1 (0.001), l1.t0 (0.003)
        with self.assertRaises(ValueError):
            make_plan(p, "fixed:1,2")


class InputsAreChecked(unittest.TestCase):
    def test_profile_errors_name_the_field(self):
        with self.assertRaisesRegex(ValueError, r"layers\[0\] lacks 'backward_s'"):
            Profile.from_dict({"batch": 1, "forward_s": 0, "layers": [{"tensors": []}]})
        with self.assertRaisesRegex(ValueError, "grad_bytes"):
            Profile.from_dict({"batch": 1, "forward_s": 0, "grad_dtype": "fp16", "layers": [
                {"backward_s": 1, "grad_bytes": 8, "tensors": [{"elems": 2}]}]})

    def test_uneven_hosts_are_refused(self):
        self.assertEqual(layout(2048, 8), (256, 8))
        self.assertEqual(layout(4, 8), (1, 4))
        with self.assertRaises(ValueError):
            layout(12, 8)


class MedianOfRepeatedRuns(unittest.TestCase):
    HEAD = ("hosts,local_ranks,link_gbit,link_latency_us,algorithm,bytes,busbw_GBps,step_s,kind,"
            "compute_s\n")

    def write(self, d, name, text):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_median_min_max_and_rows_missing_from_a_run(self):
        with tempfile.TemporaryDirectory() as d:
            a = self.write(d, "a.csv", self.HEAD + "2,2,1.0,0,ring,16,0.10,,allreduce,\n"
                                                   "2,2,1.0,0,ring,,,0.40,train,0.15\n")
            b = self.write(d, "b.csv", self.HEAD + "2,2,1.0,0,ring,16,0.30,,allreduce,\n")
            c = self.write(d, "c.csv", self.HEAD + "2,2,1.0,0,ring,16,0.20,,allreduce,\n")
            rows = median_rows.merge([a, b, c])
        self.assertEqual(len(rows), 2)
        self.assertEqual((rows[0]["runs"], rows[0]["busbw_GBps"], rows[0]["busbw_min"],
                          rows[0]["busbw_max"]), (3, 0.2, 0.1, 0.3))
        self.assertEqual((rows[1]["runs"], rows[1]["step_s"], rows[1]["compute_s"]),
                         (1, 0.4, 0.15))

    def test_calibration_files_without_kind_are_allreduce_rows(self):
        with tempfile.TemporaryDirectory() as d:
            a = self.write(d, "cal.csv", "repeat,hosts,local_ranks,link_gbit,link_latency_us,"
                           "algorithm,bytes,busbw_GBps\n0,2,1,0,0,ring,64,1.0\n"
                           "1,2,1,0,0,ring,64,1.2\n")
            rows = median_rows.merge([a])
            self.assertEqual((rows[0]["kind"], rows[0]["busbw_GBps"]), ("allreduce", 1.1))
            bad = self.write(d, "bad.csv", "hosts,bytes\n2,64\n")
            with self.assertRaisesRegex(ValueError, "bad.csv: lacks column"):
                median_rows.merge([bad])


class CommandLine(unittest.TestCase):
    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            rc = model.main(list(argv))
        return rc, out.getvalue(), err.getvalue()

    def test_table_and_csv(self):
        with tempfile.TemporaryDirectory() as d:
            csv_path = os.path.join(d, "out.csv")
            rc, out, _ = self.run_cli("--profile", os.path.join(HERE, "profiles",
                                      "resnet50_cpu_b8.json"), "--network", "h200-ndr",
                                      "--world", "8,16", "--plan", "cuda:16", "--csv", csv_path)
            self.assertEqual(rc, 0)
            self.assertIn("hierarchical", out)
            with open(csv_path) as f:
                lines = f.read().splitlines()
            self.assertEqual(lines[0].split(",")[:4], ["world", "hosts", "local", "algorithm"])
            self.assertEqual(len(lines), 1 + 2 * 2)

    def test_compare_reports_the_error_of_each_row(self):
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "m.csv")
            n = Network.load("simcluster").with_inter(1.0, 100.0)
            pred = busbw_Bps(replace(n, gpus_per_node=2), "ring", 4, 1 << 24)
            with open(m, "w") as f:
                f.write("hosts,local_ranks,link_gbit,link_latency_us,algorithm,bytes,busbw_GBps,"
                        "step_s\n")
                f.write(f"2,2,1,100,ring,{1 << 24},{pred / 1e9 * 1.1},\n")
            rc, out, _ = self.run_cli("--compare", m)
            self.assertEqual(rc, 0)
            self.assertIn("-9.09", out)  # predicted is 1/1.1 of "measured": -9.09 %

    def test_compare_of_compute_unshaped_and_single_rank_rows(self):
        prof = os.path.join(HERE, "profiles", "resnet18_32px_cpu_b8.json")
        step1 = Profile.load(prof).step_s
        with tempfile.TemporaryDirectory() as d:
            m = os.path.join(d, "m.csv")
            with open(m, "w") as f:
                f.write("hosts,local_ranks,link_gbit,link_latency_us,algorithm,bytes,busbw_GBps,"
                        "step_s,compute_s\n")
                f.write(f"2,2,0,0,ring,{1 << 24},0.5,,\n")        # unshaped link
                f.write(f"1,1,0,0,ring,{1 << 24},0,{step1},{step1}\n")  # one rank: no busbw
                f.write(f"4,2,1,0,ring,,,1.0,{2 * step1}\n")   # 8 ranks on 2 cores: f = 4
            out_csv = os.path.join(d, "e.csv")
            rc, out, _ = self.run_cli("--compare", m, "--profile", prof, "--plan", "engine:4",
                                      "--wire", "fp16", "--csv", out_csv)
            self.assertEqual(rc, 0)
            with open(out_csv) as f:
                rows = list(csv.DictReader(f))
            q = [(r["hosts"], r["quantity"]) for r in rows]
            self.assertEqual(q, [("2", "busbw_GBps"), ("1", "step_s"), ("1", "compute_s"),
                                 ("4", "step_s"), ("4", "compute_s")])
            self.assertAlmostEqual(float(rows[2]["predicted"]), step1, places=9)
            self.assertAlmostEqual(float(rows[4]["predicted"]), 4 * step1, places=9)
            self.assertAlmostEqual(float(rows[4]["error_pct"]), 100.0, places=6)
            # --measured-compute: the step is predicted from 2 x step1 instead of 4 x step1
            rc, _, _ = self.run_cli("--compare", m, "--profile", prof, "--plan", "engine:4",
                                    "--wire", "fp16", "--csv", out_csv, "--measured-compute")
            with open(out_csv) as f:
                fast = float(list(csv.DictReader(f))[3]["predicted"])
            self.assertAlmostEqual(float(rows[3]["predicted"]) - fast, 2 * step1, places=9)

    def test_bad_input_exits_2(self):
        rc, _, err = self.run_cli("--profile", "/nonexistent.json")
        self.assertEqual(rc, 2)
        self.assertIn("nonexistent", err)
        rc, _, err = self.run_cli("--profile", os.path.join(HERE, "profiles",
                                  "resnet50_cpu_b8.json"), "--network", "nosuch")
        self.assertEqual(rc, 2)
        self.assertIn("built in", err)


if __name__ == "__main__":
    unittest.main()
