// dtrain-loadgen: control-plane load on one coordinator. Registers N simulated
// workers (sim_workers.h: one WorkerSession stream each, heartbeats as a real
// worker sends them), runs C client threads that poll GetJob / ListJobs /
// ListWorkers, and reports client latency, lost heartbeats, workers the
// coordinator declared dead, and the coordinator's CPU and memory
// (proc_stats.h). Starts a coordinator child itself with --coordinator-bin,
// or measures an existing one (--coordinator HOST:PORT --coordinator-pid PID).
#include <CLI/CLI.hpp>
#include <google/protobuf/arena.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "bench/load/proc_stats.h"
#include "bench/load/sim_workers.h"
#include "proto/dtrain.grpc.pb.h"

namespace dtrain::load {
namespace {

namespace v1 = ::dtrain::v1;
using json = nlohmann::json;

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted = true; }

struct Flags {
  std::string coordinator;          // existing one
  int coordinator_pid = 0;
  std::string coordinator_bin;      // or start one
  int port = 0;
  double heartbeat_timeout = 10.0;  // passed to the started coordinator
  std::string coordinator_log = "/tmp/dtrain-loadgen-coordinator.log";
  std::vector<std::string> coordinator_args;
  int workers = 2048;
  int streams_per_channel = 64;
  int workers_per_host = 8;
  int ucx_address_bytes = 256;
  int clients = 100;
  int client_channels = 4;
  double interval_ms = 100;
  std::string mix = "GetJob=8,ListJobs=1,ListWorkers=1";
  double rpc_timeout = 10;
  double seconds = 60;
  double register_timeout = 120;
  int job_workers = 4096;
  std::string submit_when = "before";  // the queued job: before or after registration
  std::string json_path;
  // Security (the coordinator's optional tokens and TLS).
  std::string client_token_file, join_token_file;  // else env DTRAIN_CLIENT_TOKEN / DTRAIN_JOIN_TOKEN
  std::string ca_file;                             // PEM CA: connect with TLS
  std::string tls_server_name;                     // name to check the certificate against
};

// Set once in Main, read by every thread.
struct Security {
  std::string client_token, join_token;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string server_name;
};
Security g_security;

std::string ReadTokenFile(const std::string& path, const char* env) {
  std::string token;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::getline(in, token);
  } else if (const char* e = std::getenv(env)) {
    token = e;
  }
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return token;
}

void Authorize(grpc::ClientContext& ctx) {
  if (!g_security.client_token.empty()) ctx.AddMetadata("authorization", "Bearer " + g_security.client_token);
}

enum Rpc { kGetJob, kListJobs, kListWorkers, kRpcs };
const char* const kRpcName[kRpcs] = {"GetJob", "ListJobs", "ListWorkers"};

struct Summary {
  int64_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Summary Summarize(std::vector<double> v) {
  Summary s;
  s.n = static_cast<int64_t>(v.size());
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto q = [&](double p) {
    const size_t i = static_cast<size_t>(std::ceil(p * double(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.p50 = q(0.50);
  s.p90 = q(0.90);
  s.p99 = q(0.99);
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  return s;
}

std::array<double, kRpcs> ParseMix(const std::string& mix) {
  std::array<double, kRpcs> w{};
  std::stringstream ss(mix);
  for (std::string item; std::getline(ss, item, ',');) {
    const size_t eq = item.find('=');
    const std::string name = item.substr(0, eq);
    int k = -1;
    for (int r = 0; r < kRpcs; ++r) {
      if (name == kRpcName[r]) k = r;
    }
    if (k < 0 || eq == std::string::npos) {
      throw std::runtime_error("--mix: '" + item + "' (expected GetJob=W,ListJobs=W,ListWorkers=W)");
    }
    w[k] = std::stod(item.substr(eq + 1));
  }
  if (w[0] + w[1] + w[2] <= 0) throw std::runtime_error("--mix: all weights are 0");
  return w;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int id) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("dtrain.loadgen.client_channel", id);
  if (!g_security.server_name.empty()) args.SetSslTargetNameOverride(g_security.server_name);
  return grpc::CreateCustomChannel(
      target, g_security.credentials ? g_security.credentials : grpc::InsecureChannelCredentials(), args);
}

std::chrono::system_clock::time_point DeadlineIn(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double>(seconds));
}

// What the pollers see in ListWorkers answers about the simulated workers.
struct WorkerWatch {
  std::mutex mu;
  const std::unordered_set<std::string>* ours = nullptr;
  bool all_ours = false;           // a coordinator the tool started knows no other worker
  std::set<std::string> not_idle;  // ever seen in a state other than IDLE
  std::set<std::string> dead;      // ever seen DEAD
  double max_age = 0;              // largest last_heartbeat_age_seconds seen
  int min_seen = -1;               // fewest of ours in one answer

  void Inspect(const v1::ListWorkersResponse& resp) {
    double age = 0;
    int seen = 0;
    std::vector<std::string> bad, gone;
    for (const v1::Worker& w : resp.workers()) {
      if (!all_ours && !ours->count(w.id())) continue;
      ++seen;
      if (w.state() == v1::IDLE) {
        age = std::max(age, w.last_heartbeat_age_seconds());
      } else {
        bad.push_back(w.id());
        if (w.state() == v1::DEAD) gone.push_back(w.id());
      }
    }
    std::lock_guard<std::mutex> l(mu);
    max_age = std::max(max_age, age);
    min_seen = min_seen < 0 ? seen : std::min(min_seen, seen);
    not_idle.insert(bad.begin(), bad.end());
    dead.insert(gone.begin(), gone.end());
  }
};

struct PollerResult {
  std::array<std::vector<double>, kRpcs> ms;
  std::array<int64_t, kRpcs> errors{};
  std::array<std::string, kRpcs> first_error;
  int64_t skipped_slots = 0;  // a call ran past the next slot (the poller fell behind)
};

void Poll(int index, const Flags& f, v1::Coordinator::Stub& stub, const std::string& job_id,
          const std::array<double, kRpcs>& mix, WorkerWatch& watch, const std::atomic<bool>& stop,
          PollerResult& out) {
  std::mt19937_64 rng(1000 + index);
  std::discrete_distribution<int> pick(mix.begin(), mix.end());
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(f.interval_ms));
  auto next = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double, std::milli>(
                                     std::uniform_real_distribution<double>(0, f.interval_ms)(rng)));
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 << 10;
  arena_options.max_block_size = 1 << 20;
  google::protobuf::Arena arena(arena_options);
  for (auto& v : out.ms) v.reserve(static_cast<size_t>(f.seconds * 1000 / f.interval_ms) + 16);
  while (!stop) {
    std::this_thread::sleep_until(next);
    if (stop) break;
    const int r = pick(rng);
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(f.rpc_timeout));
    Authorize(ctx);
    grpc::Status st;
    // The big answer is parsed onto the thread's arena: the tool's own
    // allocations compete with the coordinator for the same cores.
    auto* workers = google::protobuf::Arena::CreateMessage<v1::ListWorkersResponse>(&arena);
    const auto t0 = Clock::now();
    switch (r) {
      case kGetJob: {
        v1::GetJobRequest req;
        req.set_job_id(job_id);
        v1::Job job;
        st = stub.GetJob(&ctx, req, &job);
        break;
      }
      case kListJobs: {
        v1::ListJobsResponse resp;
        st = stub.ListJobs(&ctx, v1::ListJobsRequest(), &resp);
        break;
      }
      default:
        st = stub.ListWorkers(&ctx, v1::ListWorkersRequest(), workers);
        break;
    }
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (st.ok()) {
      out.ms[r].push_back(ms);
      if (r == kListWorkers) watch.Inspect(*workers);
    } else {
      if (out.errors[r]++ == 0) out.first_error[r] = st.error_message();
    }
    arena.Reset();
    next += interval;
    const auto now = Clock::now();
    if (next < now) {  // do not burst to catch up: a real CLI would not
      out.skipped_slots += (now - next) / interval + 1;
      next = now;
    }
  }
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app{"dtrain-loadgen: control-plane load (simulated workers + polling clients) on a coordinator"};
  app.add_option("--coordinator", f.coordinator, "HOST:PORT of an existing coordinator");
  app.add_option("--coordinator-pid", f.coordinator_pid, "its pid, to read its CPU and memory from /proc");
  app.add_option("--coordinator-bin", f.coordinator_bin, "start this dtrain-coordinator on loopback instead");
  app.add_option("--port", f.port, "port for the started coordinator (0: any free one)")->capture_default_str();
  app.add_option("--heartbeat-timeout", f.heartbeat_timeout, "the started coordinator's --heartbeat-timeout")
      ->capture_default_str();
  app.add_option("--coordinator-log", f.coordinator_log, "the started coordinator's stdout and stderr")
      ->capture_default_str();
  app.add_option("--coordinator-arg", f.coordinator_args, "extra flag for the started coordinator (repeat)");
  app.add_option("--workers", f.workers, "simulated workers, one WorkerSession stream each")->capture_default_str();
  app.add_option("--streams-per-channel", f.streams_per_channel,
                 "worker streams per TCP connection (1: one connection per worker, as real workers)")
      ->capture_default_str();
  app.add_option("--workers-per-host", f.workers_per_host, "simulated workers per host name")->capture_default_str();
  app.add_option("--ucx-address-bytes", f.ucx_address_bytes, "size of each Register's UCX address")
      ->capture_default_str();
  app.add_option("--clients", f.clients, "polling client threads")->capture_default_str();
  app.add_option("--client-channels", f.client_channels, "connections the clients share")->capture_default_str();
  app.add_option("--interval-ms", f.interval_ms, "each client calls once per interval")->capture_default_str();
  app.add_option("--mix", f.mix, "relative weights of the client calls")->capture_default_str();
  app.add_option("--rpc-timeout", f.rpc_timeout, "client call deadline, seconds")->capture_default_str();
  app.add_option("--seconds", f.seconds, "length of the measured run after registration")->capture_default_str();
  app.add_option("--register-timeout", f.register_timeout, "seconds allowed for all registrations")
      ->capture_default_str();
  app.add_option("--job-workers", f.job_workers,
                 "workers the submitted job asks for (more than are idle: it stays QUEUED)")
      ->capture_default_str();
  app.add_option("--submit-job", f.submit_when,
                 "submit the queued job before registration (every registration then runs the "
                 "scheduler against it) or after")
      ->check(CLI::IsMember({"before", "after"}))
      ->capture_default_str();
  app.add_option("--json", f.json_path, "also write the results as JSON to this file");
  app.add_option("--client-token-file", f.client_token_file,
                 "bearer token for client calls (else env DTRAIN_CLIENT_TOKEN; a started coordinator "
                 "inherits the environment)");
  app.add_option("--join-token-file", f.join_token_file,
                 "bearer token for the worker streams (else env DTRAIN_JOIN_TOKEN)");
  app.add_option("--ca", f.ca_file, "PEM CA certificate: connect with TLS");
  app.add_option("--tls-server-name", f.tls_server_name, "name the certificate is checked against");
  CLI11_PARSE(app, argc, argv);
  g_security.client_token = ReadTokenFile(f.client_token_file, "DTRAIN_CLIENT_TOKEN");
  g_security.join_token = ReadTokenFile(f.join_token_file, "DTRAIN_JOIN_TOKEN");
  g_security.server_name = f.tls_server_name;
  if (!f.ca_file.empty()) {
    std::ifstream in(f.ca_file);
    if (!in) throw std::runtime_error("cannot read --ca " + f.ca_file);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    g_security.credentials = grpc::SslCredentials(ssl);
  }
  if (f.coordinator.empty() == f.coordinator_bin.empty()) {
    std::fprintf(stderr, "dtrain-loadgen: give --coordinator HOST:PORT or --coordinator-bin PATH\n");
    return 2;
  }
  const auto mix = ParseMix(f.mix);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  RaiseFileLimit();

  // ---- the coordinator (started before any gRPC thread exists: fork) ----
  ChildProcess child;
  std::string target = f.coordinator;
  pid_t pid = f.coordinator_pid;
  if (!f.coordinator_bin.empty()) {
    const std::string port_file = "/tmp/dtrain-loadgen-port." + std::to_string(getpid());
    std::remove(port_file.c_str());
    std::vector<std::string> argv_c = {f.coordinator_bin, "--listen", "127.0.0.1:" + std::to_string(f.port),
                                       "--port-file", port_file, "--heartbeat-timeout",
                                       Fixed(f.heartbeat_timeout, 3)};
    argv_c.insert(argv_c.end(), f.coordinator_args.begin(), f.coordinator_args.end());
    child.Spawn(argv_c, f.coordinator_log);
    const int port = WaitForPortFile(port_file, child, 30);
    std::remove(port_file.c_str());
    if (port == 0) {
      std::fprintf(stderr, "dtrain-loadgen: the coordinator did not start (log: %s)\n", f.coordinator_log.c_str());
      return 3;
    }
    target = "127.0.0.1:" + std::to_string(port);
    pid = child.pid();
    std::fprintf(stderr, "loadgen: started %s on %s (pid %d, log %s)\n", f.coordinator_bin.c_str(),
                 target.c_str(), int(pid), f.coordinator_log.c_str());
  }
  const int port = std::atoi(target.substr(target.rfind(':') + 1).c_str());

  // ---- a queued job for GetJob to return ----
  auto control_channel = MakeChannel(target, -1);
  auto control = v1::Coordinator::NewStub(control_channel);
  if (!control_channel->WaitForConnected(DeadlineIn(10))) {
    std::fprintf(stderr, "dtrain-loadgen: cannot reach the coordinator at %s\n", target.c_str());
    return 3;
  }
  std::string job_id;
  auto submit = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10));
    Authorize(ctx);
    v1::SubmitJobRequest req;
    req.set_spec_yaml("name: loadgen-queued\nkind: allreduce-bench\nworkers: " + std::to_string(f.job_workers) +
                      "\n");
    v1::SubmitJobResponse resp;
    const grpc::Status st = control->SubmitJob(&ctx, req, &resp);
    if (!st.ok()) throw std::runtime_error("SubmitJob: " + st.error_message());
    job_id = resp.job().id();
  };
  if (f.submit_when == "before") submit();

  // ---- registration ----
  // No pid (an existing coordinator without --coordinator-pid): its figures stay empty.
  auto coordinator_proc = [pid] { return pid > 0 ? ReadProc(pid) : ProcSample(); };
  const int base_connections = CountConnectionsTo(port);  // the control channel's
  const ProcSample c_before_reg = coordinator_proc();
  FleetOptions fo;
  fo.target = target;
  fo.workers = f.workers;
  fo.streams_per_channel = f.streams_per_channel;
  fo.workers_per_host = f.workers_per_host;
  fo.ucx_address_bytes = f.ucx_address_bytes;
  fo.join_token = g_security.join_token;
  fo.credentials = g_security.credentials;
  fo.tls_server_name = g_security.server_name;
  SimFleet fleet(fo);
  std::fprintf(stderr, "loadgen: registering %d workers on %d connections (job %s)...\n", f.workers,
               fleet.channels(), job_id.empty() ? "submitted after registration" : (job_id + " queued").c_str());
  const bool all_registered = fleet.Register(f.register_timeout);
  const FleetStats after_reg = fleet.Stats();
  const ProcSample c_after_reg = coordinator_proc();
  const int connections = CountConnectionsTo(port) - base_connections;
  std::fprintf(stderr, "loadgen: %d/%d registered in %.2f s; %d connections to port %d\n", after_reg.registered,
               f.workers, after_reg.registration_seconds, connections, port);
  if (f.submit_when == "after") submit();
  const auto ids_vec = fleet.WorkerIds();
  const std::unordered_set<std::string> ours(ids_vec.begin(), ids_vec.end());

  // ---- the measured run: heartbeats + polling clients ----
  WorkerWatch watch;
  watch.ours = &ours;
  watch.all_ours = child.pid() > 0;
  std::vector<std::shared_ptr<grpc::Channel>> client_channels;
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> client_stubs;
  for (int c = 0; c < std::max(1, f.client_channels); ++c) {
    client_channels.push_back(MakeChannel(target, c));
    client_stubs.push_back(v1::Coordinator::NewStub(client_channels.back()));
    client_channels.back()->WaitForConnected(DeadlineIn(10));
  }
  std::atomic<bool> stop{false};
  std::vector<PollerResult> results(f.clients);
  const ProcSample c0 = coordinator_proc(), self0 = ReadProc(0);
  const HostCpu host0 = ReadHostCpu();
  const auto t0 = Clock::now();
  std::vector<std::thread> pollers;
  for (int i = 0; i < f.clients; ++i) {
    pollers.emplace_back(Poll, i, std::cref(f), std::ref(*client_stubs[i % client_stubs.size()]),
                         std::cref(job_id), std::cref(mix), std::ref(watch), std::cref(stop),
                         std::ref(results[i]));
  }
  double max_cpu_1s = 0;  // the coordinator's busiest second
  ProcSample prev = c0;
  auto prev_t = t0;
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.seconds));
  for (int tick = 1; Clock::now() < end && !g_interrupted; ++tick) {
    std::this_thread::sleep_until(std::min(end, t0 + std::chrono::seconds(tick)));
    const ProcSample s = coordinator_proc();
    const auto now = Clock::now();
    const double dt = std::chrono::duration<double>(now - prev_t).count();
    if (s.ok && prev.ok && dt > 0.5) max_cpu_1s = std::max(max_cpu_1s, (s.cpu_seconds - prev.cpu_seconds) / dt);
    prev = s;
    prev_t = now;
    if (tick % 10 == 0) {
      const FleetStats fs = fleet.Stats();
      std::lock_guard<std::mutex> l(watch.mu);
      std::fprintf(stderr, "loadgen: t=%3ds heartbeats %lld late %lld coalesced %lld; dead %zu; streams ended %d\n",
                   tick, (long long)fs.heartbeats_written, (long long)fs.heartbeats_late,
                   (long long)fs.heartbeats_coalesced, watch.dead.size(), fs.streams_ended);
    }
  }
  stop = true;
  for (auto& t : pollers) t.join();
  const auto t1 = Clock::now();
  const ProcSample c1 = coordinator_proc(), self1 = ReadProc(0);
  const HostCpu host1 = ReadHostCpu();
  // Everything else on the machine (builds, other tools) competes for the same cores.
  const double host_busy =
      host1.total > host0.total ? 100.0 * (host1.busy - host0.busy) / (host1.total - host0.total) : -1;
  const double wall = std::chrono::duration<double>(t1 - t0).count();

  // ---- the end state, before the streams are closed ----
  int dead_at_end = -1, not_idle_at_end = -1, missing_at_end = -1;
  double max_age_at_end = 0;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(f.rpc_timeout));
    Authorize(ctx);
    v1::ListWorkersResponse resp;
    if (control->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).ok()) {
      dead_at_end = not_idle_at_end = 0;
      int seen = 0;
      for (const auto& w : resp.workers()) {
        if (!ours.count(w.id())) continue;
        ++seen;
        if (w.state() == v1::DEAD) ++dead_at_end;
        if (w.state() != v1::IDLE) ++not_idle_at_end;
        else max_age_at_end = std::max(max_age_at_end, w.last_heartbeat_age_seconds());
      }
      missing_at_end = static_cast<int>(ours.size()) - seen;
      watch.Inspect(resp);
    }
  }
  std::string job_state = "?";  // at the end of the run (expected: QUEUED); then cancelled
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(f.rpc_timeout));
    Authorize(ctx);
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    v1::Job job;
    if (control->GetJob(&ctx, req, &job).ok()) job_state = v1::JobState_Name(job.state());
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(f.rpc_timeout));
    Authorize(ctx);
    v1::CancelJobRequest req;
    req.set_job_id(job_id);
    v1::Job job;
    control->CancelJob(&ctx, req, &job);
  }
  const FleetStats fs = fleet.Stats();
  fleet.Stop();
  std::string child_exit;
  if (child.pid() > 0) child_exit = child.Stop();

  // ---- report ----
  std::array<std::vector<double>, kRpcs> ms;
  std::array<int64_t, kRpcs> errors{};
  std::array<std::string, kRpcs> first_error;
  std::vector<double> all_ms;
  int64_t skipped = 0;
  for (auto& r : results) {
    for (int k = 0; k < kRpcs; ++k) {
      ms[k].insert(ms[k].end(), r.ms[k].begin(), r.ms[k].end());
      all_ms.insert(all_ms.end(), r.ms[k].begin(), r.ms[k].end());
      errors[k] += r.errors[k];
      if (first_error[k].empty()) first_error[k] = r.first_error[k];
    }
    skipped += r.skipped_slots;
  }
  const int dead_seen = static_cast<int>(watch.dead.size());
  const int not_idle_seen = static_cast<int>(watch.not_idle.size());
  const int64_t lost = fs.heartbeats_late + fs.heartbeats_coalesced + fs.heartbeats_unsent + fs.write_failures;
  const double c_cpu = (c1.ok && c0.ok) ? 100.0 * (c1.cpu_seconds - c0.cpu_seconds) / wall : -1;
  const double c_cpu_reg =
      (c_after_reg.ok && c_before_reg.ok && after_reg.registration_seconds > 0)
          ? 100.0 * (c_after_reg.cpu_seconds - c_before_reg.cpu_seconds) / after_reg.registration_seconds
          : -1;
  const double self_cpu = 100.0 * (self1.cpu_seconds - self0.cpu_seconds) / wall;
  const double others_cpu = std::max(0.0, host_busy * OnlineCpus() - std::max(0.0, c_cpu) - self_cpu);

  json out;
  out["workers"] = f.workers;
  out["clients"] = f.clients;
  out["seconds"] = wall;
  out["connections"] = connections;
  out["streams_per_channel"] = f.streams_per_channel;
  out["interval_ms"] = f.interval_ms;
  out["mix"] = f.mix;
  out["registration"] = {{"registered", after_reg.registered},
                         {"all", all_registered},
                         {"seconds", after_reg.registration_seconds},
                         {"coordinator_cpu_percent", c_cpu_reg}};
  const Summary reg = Summarize(after_reg.register_ms);
  out["registration"]["per_worker_ms"] = {{"p50", reg.p50}, {"p90", reg.p90}, {"p99", reg.p99}, {"max", reg.max}};

  std::printf("%-8s %-8s %-8s %-6s %-12s %8s %8s %8s %8s %8s %7s\n", "workers", "clients", "seconds", "reg_s",
              "rpc", "p50_ms", "p90_ms", "p99_ms", "max_ms", "calls", "errors");
  auto row = [&](bool first, const std::string& name, const Summary& s, int64_t errs) {
    if (first) {
      std::printf("%-8d %-8d %-8.0f %-6.2f ", f.workers, f.clients, wall, after_reg.registration_seconds);
    } else {
      std::printf("%-8s %-8s %-8s %-6s ", "", "", "", "");
    }
    std::printf("%-12s %8.2f %8.2f %8.2f %8.2f %8lld %7lld\n", name.c_str(), s.p50, s.p90, s.p99, s.max,
                (long long)s.n, (long long)errs);
    out["rpc"][name == "heartbeat*" ? "heartbeat_write" : name] = {{"p50_ms", s.p50}, {"p90_ms", s.p90}, {"p99_ms", s.p99}, {"max_ms", s.max},
                        {"mean_ms", s.mean}, {"calls", s.n}, {"errors", errs}};
  };
  int64_t all_errors = 0;
  for (int k = 0; k < kRpcs; ++k) {
    row(k == 0, kRpcName[k], Summarize(ms[k]), errors[k]);
    all_errors += errors[k];
  }
  row(false, "all", Summarize(all_ms), all_errors);
  const Summary hb = Summarize(fs.heartbeat_ms);
  row(false, "heartbeat*", hb, fs.write_failures);
  std::printf("* heartbeat: due -> written by gRPC (the coordinator acks nothing); %lld written\n",
              (long long)fs.heartbeats_written);
  std::printf("registration: %d/%d workers on %d connections in %.2f s (per worker p50 %.1f ms, p99 %.1f ms, "
              "max %.1f ms; coordinator cpu %s)\n",
              after_reg.registered, f.workers, connections, after_reg.registration_seconds, reg.p50, reg.p99,
              reg.max,
              after_reg.registration_seconds >= 0.5 ? (Fixed(c_cpu_reg, 0) + " % of one core").c_str() : "n/a (too short)");
  std::printf("lost heartbeats: %lld (late > 1 s %lld, coalesced %lld, unsent %lld, failed %lld)   workers "
              "declared dead: %d (not idle %d; at end dead %d, missing %d)   streams ended by the coordinator: %d\n",
              (long long)lost, (long long)fs.heartbeats_late, (long long)fs.heartbeats_coalesced,
              (long long)fs.heartbeats_unsent, (long long)fs.write_failures, dead_seen, not_idle_seen, dead_at_end,
              missing_at_end, fs.streams_ended);
  std::printf("heartbeat age at the coordinator (ListWorkers): max %.2f s during the run, %.2f s at end "
              "(interval %.2f s, deadline %s); tool timer lag max %.1f ms\n",
              watch.max_age, max_age_at_end, fs.heartbeat_interval,
              f.coordinator_bin.empty() ? "the coordinator's" : (Fixed(f.heartbeat_timeout, 1) + " s").c_str(),
              fs.max_timer_lag_ms);
  if (c1.ok) {
    std::printf("coordinator cpu: %.0f %% of one core (busiest second %.0f %%), rss %.0f MiB (peak %.0f MiB), "
                "%d threads;  ",
                c_cpu, 100 * max_cpu_1s, c1.rss_kib / 1024.0, c1.hwm_kib / 1024.0, c1.threads);
  } else {
    std::printf("coordinator cpu: n/a (give --coordinator-pid);  ");
  }
  std::printf("loadgen cpu: %.0f %% of one core;  client slots skipped: %lld\n", self_cpu, (long long)skipped);
  // Coordinator CPU per 1,000 client calls per second, and per 1,000 messages
  // per second with the heartbeats counted as calls too.
  const double rpc_per_s = double(all_ms.size()) / wall;
  const double hb_per_s = double(fs.heartbeats_written) / std::max(wall, 1e-9);
  const double cpu_per_krps = c_cpu >= 0 && rpc_per_s > 0 ? c_cpu / (rpc_per_s / 1000) : -1;
  const double cpu_per_kmsg = c_cpu >= 0 && rpc_per_s + hb_per_s > 0 ? c_cpu / ((rpc_per_s + hb_per_s) / 1000) : -1;
  if (c1.ok) {
    std::printf("coordinator CPU per 1,000 RPC/s: %.1f %% of one core (%.0f client calls/s); per 1,000 "
                "calls + heartbeats/s: %.1f %% (%.0f heartbeats/s)\n",
                cpu_per_krps, rpc_per_s, cpu_per_kmsg, hb_per_s);
  }
  std::printf("machine: %d cpus, %.0f %% busy during the run; other processes used %.0f %% of one core\n",
              OnlineCpus(), host_busy, others_cpu);
  if (!fs.first_end_reason.empty()) std::printf("first stream end: %s\n", fs.first_end_reason.c_str());
  for (int k = 0; k < kRpcs; ++k) {
    if (!first_error[k].empty()) std::printf("first %s error: %s\n", kRpcName[k], first_error[k].c_str());
  }
  if (!child_exit.empty()) std::printf("coordinator stopped: %s\n", child_exit.c_str());
  std::fflush(stdout);

  out["heartbeats"] = {{"interval_s", fs.heartbeat_interval},
                       {"written", fs.heartbeats_written},
                       {"lost", lost},
                       {"late", fs.heartbeats_late},
                       {"coalesced", fs.heartbeats_coalesced},
                       {"unsent", fs.heartbeats_unsent},
                       {"write_failures", fs.write_failures},
                       {"max_age_at_coordinator_s", watch.max_age},
                       {"max_age_at_end_s", max_age_at_end},
                       {"max_timer_lag_ms", fs.max_timer_lag_ms}};
  out["workers_declared_dead"] = dead_seen;
  out["workers_not_idle"] = not_idle_seen;
  out["dead_at_end"] = dead_at_end;
  out["missing_at_end"] = missing_at_end;
  out["streams_ended_by_coordinator"] = fs.streams_ended;
  out["unexpected_messages"] = fs.unexpected_messages;
  out["client_slots_skipped"] = skipped;
  out["coordinator"] = {{"pid", pid},
                        {"cpu_percent_of_one_core", c_cpu},
                        {"busiest_second_cpu_percent", 100 * max_cpu_1s},
                        {"rss_mib", c1.rss_kib / 1024.0},
                        {"peak_rss_mib", c1.hwm_kib / 1024.0},
                        {"threads", c1.threads},
                        {"cpu_percent_per_1000_rpc_per_s", cpu_per_krps},
                        {"cpu_percent_per_1000_rpc_and_heartbeats_per_s", cpu_per_kmsg},
                        {"client_rpc_per_s", rpc_per_s},
                        {"heartbeats_per_s", hb_per_s},
                        {"heartbeat_timeout_s", f.heartbeat_timeout}};
  out["loadgen_cpu_percent_of_one_core"] = self_cpu;
  out["machine"] = {{"cpus", OnlineCpus()}, {"busy_percent", host_busy}, {"others_cpu_percent_of_one_core", others_cpu}};
  out["job"] = {{"id", job_id}, {"world_size", f.job_workers}, {"state", job_state}, {"submitted", f.submit_when}};
  if (!f.json_path.empty()) std::ofstream(f.json_path) << out.dump(2) << "\n";

  const bool pass = all_registered && lost == 0 && dead_seen == 0 && fs.streams_ended == 0 && all_errors == 0;
  return pass ? 0 : 1;
}

}  // namespace
}  // namespace dtrain::load

int main(int argc, char** argv) {
  try {
    return dtrain::load::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dtrain-loadgen: %s\n", e.what());
    return 2;
  }
}
