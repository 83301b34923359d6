// Process accounting for the load tool: CPU time and memory of a process from
// /proc/<pid>/stat and /proc/<pid>/status, a coordinator child started on
// loopback, and a count of the TCP connections to a port.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::load {

struct ProcSample {
  bool ok = false;
  double cpu_seconds = 0;  // utime + stime
  int64_t rss_kib = 0;     // VmRSS
  int64_t hwm_kib = 0;     // VmHWM: peak resident set
  int threads = 0;
};

// Reads /proc/<pid>/stat and /proc/<pid>/status (pid 0: this process).
ProcSample ReadProc(pid_t pid);

// Whole-machine CPU time from /proc/stat: busy and total jiffies (all cores).
struct HostCpu {
  double busy = 0, total = 0;
};
HostCpu ReadHostCpu();
int OnlineCpus();

// Raises this process's soft open-file limit to the hard limit (children
// inherit it): one real worker is one connection, and --streams-per-channel 1
// opens thousands.
void RaiseFileLimit();

// A dtrain-coordinator started by the tool. Its stdout and stderr go to
// `log_path`; it gets SIGTERM if the tool dies (PR_SET_PDEATHSIG).
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();
  // Throws std::runtime_error when fork or exec fails.
  void Spawn(const std::vector<std::string>& argv, const std::string& log_path);
  pid_t pid() const { return pid_; }
  bool Running();
  // SIGTERM, then SIGKILL after `grace_seconds`. Returns the exit status text.
  std::string Stop(double grace_seconds = 5.0);

 private:
  pid_t pid_ = -1;
};

// Waits until `path` holds a port number (the coordinator's --port-file).
// Returns 0 when the child exited or `timeout_seconds` passed.
int WaitForPortFile(const std::string& path, ChildProcess& child, double timeout_seconds);

// Established TCP connections (IPv4 and IPv6) whose remote port is `port`:
// the client ends of connections to a server on that port, seen from this
// network namespace.
int CountConnectionsTo(int port);

}  // namespace dtrain::load
