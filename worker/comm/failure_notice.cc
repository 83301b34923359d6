#include "worker/comm/failure_notice.h"

#include <deque>
#include <mutex>

namespace dtrain::comm {
namespace {

// A send UCX has not finished may read its buffer later: every notice's text
// lives as long as the process (a few hundred bytes per failed collective).
const std::string& Keep(const std::string& text) {
  static std::mutex mu;
  static auto* kept = new std::deque<std::string>();
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(text);
  return kept->back();
}

constexpr ucp_tag_t kNoticeMask = (ucp_tag_t(0xffffff) << 40) | ucp_tag_t(0xffffff);

void Ignore(void*, ucs_status_t, void*) {}

}  // namespace

void SendFailureNotices(UcxWorker& w, const std::vector<ucp_ep_h>& eps, uint32_t job_seq, int rank,
                        const std::string& message, std::chrono::milliseconds flush) {
  const std::string& text = Keep(message);
  const auto until = std::chrono::steady_clock::now() + flush;
  std::vector<void*> reqs;
  for (ucp_ep_h ep : eps) {
    if (!ep) continue;
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK;
    p.cb.send = Ignore;
    void* req = ucp_tag_send_nbx(ep, text.data(), text.size(), UcxTag(job_seq, rank, kNoticeCallSeq), &p);
    if (req && !UCS_PTR_IS_ERR(req)) reqs.push_back(req);
  }
  for (void* req : reqs) {
    while (ucp_request_check_status(req) == UCS_INPROGRESS &&
           std::chrono::steady_clock::now() < until)
      w.Progress();
    ucp_request_free(req);  // an unfinished send is released by UCX when it ends
  }
}

bool TakeFailureNotice(UcxWorker& w, uint32_t job_seq, int* sender, std::string* text) {
  ucp_tag_recv_info_t info{};
  ucp_tag_message_h msg =
      ucp_tag_probe_nb(w.worker(), UcxTag(job_seq, 0, kNoticeCallSeq), kNoticeMask, 1, &info);
  if (!msg) return false;
  text->assign(info.length, '\0');
  ucp_request_param_t p{};
  void* req = ucp_tag_msg_recv_nbx(w.worker(), text->data(), text->size(), msg, &p);
  if (UCS_PTR_IS_ERR(req)) {
    *text = "(its notice could not be read)";
  } else if (req) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (ucp_request_check_status(req) == UCS_INPROGRESS &&
           std::chrono::steady_clock::now() < until)
      w.Progress();
    if (ucp_request_check_status(req) != UCS_OK) *text = "(its notice could not be read)";
    ucp_request_free(req);
  }
  *sender = int((info.sender_tag >> 24) & 0xffff);
  return true;
}

void DrainFailureNotices(UcxWorker& w, uint32_t job_seq) {
  int sender = 0;
  std::string text;
  while (TakeFailureNotice(w, job_seq, &sender, &text)) {
  }
}

}  // namespace dtrain::comm
