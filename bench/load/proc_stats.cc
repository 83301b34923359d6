#include "bench/load/proc_stats.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace dtrain::load {

ProcSample ReadProc(pid_t pid) {
  ProcSample s;
  const std::string dir = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
  {
    std::ifstream f(dir + "/stat");
    std::string line;
    if (!std::getline(f, line)) return s;
    // Field 2 (comm) may hold spaces: the fields after it start past the last ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos) return s;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15: utime, stime
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    s.cpu_seconds = double(utime + stime) / double(sysconf(_SC_CLK_TCK));
  }
  std::ifstream f(dir + "/status");
  for (std::string line; std::getline(f, line);) {
    long long v = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld", &v) == 1) s.rss_kib = v;
    if (std::sscanf(line.c_str(), "VmHWM: %lld", &v) == 1) s.hwm_kib = v;
    if (std::sscanf(line.c_str(), "Threads: %lld", &v) == 1) s.threads = int(v);
  }
  s.ok = true;
  return s;
}

HostCpu ReadHostCpu() {
  HostCpu h;
  std::ifstream f("/proc/stat");
  std::string cpu;
  f >> cpu;  // "cpu": the sum over cores
  double v[10] = {};
  for (int i = 0; i < 10 && f >> v[i]; ++i) {
  }
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  const double idle = v[3] + v[4];
  for (int i = 0; i < 8; ++i) h.total += v[i];
  h.busy = h.total - idle;
  return h;
}

int OnlineCpus() { return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)); }

void RaiseFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) Stop(2.0);
}

void ChildProcess::Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot write " + log_path + ": " + std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;
}

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

std::string ChildProcess::Stop(double grace_seconds) {
  if (pid_ <= 0) return "not running";
  kill(pid_, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_seconds);
  int status = 0;
  pid_t r = 0;
  while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string how;
  if (r == 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    how = "killed (no exit " + std::to_string(grace_seconds) + " s after SIGTERM)";
  } else if (WIFEXITED(status)) {
    how = "exit " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    how = std::string("signal ") + strsignal(WTERMSIG(status));
  }
  pid_ = -1;
  return how;
}

int WaitForPortFile(const std::string& path, ChildProcess& child, double timeout_seconds) {
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream f(path);
    int port = 0;
    if (f >> port && port > 0) return port;
    if (!child.Running()) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

int CountConnectionsTo(int port) {
  int n = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(table);
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      // "  0: 0100007F:9C40 0100007F:1F90 01 ..." — local, remote, state.
      char local[64], remote[64];
      unsigned state = 0;
      if (std::sscanf(line.c_str(), "%*s %63s %63s %x", local, remote, &state) != 3) continue;
      const char* colon = std::strrchr(remote, ':');
      if (state == 0x01 && colon && std::strtol(colon + 1, nullptr, 16) == port) ++n;
    }
  }
  return n;
}

}  // namespace dtrain::load
