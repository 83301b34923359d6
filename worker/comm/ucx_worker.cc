#include "worker/comm/ucx_worker.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"

namespace dtrain::comm {
namespace {

[[noreturn]] void FailUcx(const char* what, ucs_status_t st) {
  Fail(ErrorCode::kUnavailable, std::string("UCX ") + what + " failed: " +
                                    ucs_status_string(st) +
                                    " (check UCX_TLS / UCX_NET_DEVICES and `ucx_info -d`)");
}

}  // namespace

void DefaultUcxToLoopback() { setenv("UCX_NET_DEVICES", "lo", /*overwrite=*/0); }

const char* UcxErrorModeName(UcxErrorMode mode) {
  return mode == UcxErrorMode::kPeer ? "peer" : "none";
}

UcxErrorMode SameHostErrorModeFromEnv() {
  const char* v = std::getenv("DTRAIN_UCX_SAME_HOST_ERROR_MODE");
  if (!v || !*v || std::strcmp(v, "none") == 0) return UcxErrorMode::kNone;
  if (std::strcmp(v, "peer") == 0) return UcxErrorMode::kPeer;
  Fail(ErrorCode::kInvalidArgument,
       std::string("DTRAIN_UCX_SAME_HOST_ERROR_MODE=") + v + ": expected \"peer\" or \"none\"");
}

UcxWorker::UcxWorker(UcxErrorMode same_host_mode) : same_host_mode_(same_host_mode) {
  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) FailUcx("ucp_config_read", st);

  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_TAG;
  params.mt_workers_shared = 0;
  st = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  if (st != UCS_OK) FailUcx("ucp_init", st);

  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // one thread at a time, any thread
  st = ucp_worker_create(context_, &wp, &worker_);
  if (st != UCS_OK) {
    ucp_cleanup(context_);
    FailUcx("ucp_worker_create", st);
  }

  ucp_address_t* addr = nullptr;
  size_t len = 0;
  st = ucp_worker_get_address(worker_, &addr, &len);
  if (st != UCS_OK) {
    ucp_worker_destroy(worker_);
    ucp_cleanup(context_);
    FailUcx("ucp_worker_get_address", st);
  }
  address_.assign(reinterpret_cast<const char*>(addr), len);
  ucp_worker_release_address(worker_, addr);
}

UcxWorker::~UcxWorker() {
  ucp_worker_destroy(worker_);
  ucp_cleanup(context_);
}

ucp_ep_h UcxWorker::Connect(const std::string& address, bool same_host,
                            ucp_err_handler_cb_t on_error, void* arg) {
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                  UCP_EP_PARAM_FIELD_ERR_HANDLER;
  ep.address = reinterpret_cast<const ucp_address_t*>(address.data());
  ep.err_mode = ModeFor(same_host) == UcxErrorMode::kPeer ? UCP_ERR_HANDLING_MODE_PEER
                                                         : UCP_ERR_HANDLING_MODE_NONE;
  ep.err_handler.cb = on_error;
  ep.err_handler.arg = arg;
  ucp_ep_h handle = nullptr;
  ucs_status_t st = ucp_ep_create(worker_, &ep, &handle);
  if (st != UCS_OK) FailUcx("ucp_ep_create (bad or stale peer address?)", st);
  return handle;
}

void UcxWorker::Close(const std::vector<ucp_ep_h>& eps, bool force, const Deadline& deadline) {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  std::vector<void*> reqs;
  for (ucp_ep_h ep : eps) {
    if (!ep) continue;
    void* req = ucp_ep_close_nbx(ep, &p);
    if (UCS_PTR_IS_PTR(req)) reqs.push_back(req);
  }
  // A close that cannot finish by the deadline (peer gone, wedged transport) is
  // left to UCX: freeing an incomplete request releases it when it completes.
  for (void* req : reqs) {
    while (ucp_request_check_status(req) == UCS_INPROGRESS && !deadline.Expired()) Progress();
    ucp_request_free(req);
  }
}

std::string UcxWorker::Transports(ucp_ep_h ep) {
  // ucp_ep_print_info writes e.g. "#   lane[0]:  1:sysv/memory.0 md[1] ... tag".
  std::string out;
  char* text = nullptr;
  size_t size = 0;
  FILE* f = open_memstream(&text, &size);
  if (!f) return out;
  ucp_ep_print_info(ep, f);
  std::fclose(f);
  std::string all(text, size);
  std::free(text);
  for (size_t pos = 0; (pos = all.find("lane[", pos)) != std::string::npos;) {
    const size_t colon = all.find(':', all.find(']', pos) + 2);
    const size_t start = colon == std::string::npos ? colon : all.find_first_not_of(" 0123456789", colon + 1);
    const size_t end = start == std::string::npos ? start : all.find_first_of(" \n", start);
    if (end == std::string::npos) break;
    std::string tl = all.substr(start, end - start);  // "sysv/memory.0"
    if (const size_t dot = tl.rfind('.'); dot != std::string::npos) tl.resize(dot);
    if (out.find(tl) == std::string::npos) out += (out.empty() ? "" : " ") + tl;
    pos = end;
  }
  return out;
}

}  // namespace dtrain::comm
