// End-to-end tests of the dtrain binary against an in-process fake
// coordinator (a gRPC server implementing the client calls with canned jobs):
// stdout/stderr contract, exit codes, and watch falling back to polling when
// the WatchJob stream breaks.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "proto/dtrain.grpc.pb.h"

namespace {

using dtrain::v1::Job;

Job MakeJob(const std::string& id, dtrain::v1::JobState state, int64_t step) {
  Job j;
  j.set_id(id);
  j.set_name("test");
  j.set_kind("train");
  j.set_state(state);
  j.set_world_size(2);
  j.set_step(step);
  j.set_total_steps(5);
  j.set_loss(1.0 / (1 + step));
  j.set_eval_accuracy(-1);
  return j;
}

// Jobs: "j-ok" (stream runs to SUCCEEDED), "j-fail" (FAILED), "j-break"
// (stream breaks with UNAVAILABLE; GetJob then reports SUCCEEDED).
class FakeCoordinator final : public dtrain::v1::Coordinator::Service {
 public:
  grpc::Status SubmitJob(grpc::ServerContext*, const dtrain::v1::SubmitJobRequest* req,
                         dtrain::v1::SubmitJobResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_submit_ = *req;
    if (req->spec_yaml().find("workers: -1") != std::string::npos) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "workers: must be >= 1, got -1"};
    }
    *resp->mutable_job() = MakeJob("j-break", dtrain::v1::QUEUED, 0);
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext*, const dtrain::v1::GetJobRequest* req,
                      Job* job) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (req->job_id() == "j-break") {
      *job = MakeJob("j-break", ++break_polls_ > 1 ? dtrain::v1::SUCCEEDED : dtrain::v1::RUNNING, 1);
      return grpc::Status::OK;
    }
    if (req->job_id() == "j-ok" || req->job_id() == "j-fail") {
      *job = MakeJob(req->job_id(), dtrain::v1::QUEUED, 0);
      return grpc::Status::OK;
    }
    return {grpc::StatusCode::NOT_FOUND, "job '" + req->job_id() + "' not found"};
  }
  grpc::Status ListJobs(grpc::ServerContext*, const dtrain::v1::ListJobsRequest*,
                        dtrain::v1::ListJobsResponse* resp) override {
    *resp->add_jobs() = MakeJob("j-ok", dtrain::v1::RUNNING, 3);
    *resp->add_jobs() = MakeJob("j-fail", dtrain::v1::FAILED, 2);
    return grpc::Status::OK;
  }
  grpc::Status CancelJob(grpc::ServerContext*, const dtrain::v1::CancelJobRequest* req,
                         Job* job) override {
    *job = MakeJob(req->job_id(), dtrain::v1::CANCELLED, 0);
    return grpc::Status::OK;
  }
  grpc::Status WatchJob(grpc::ServerContext*, const dtrain::v1::WatchJobRequest* req,
                        grpc::ServerWriter<dtrain::v1::JobEvent>* writer) override {
    dtrain::v1::JobEvent ev;
    if (req->job_id() == "j-break") {
      *ev.mutable_job() = MakeJob("j-break", dtrain::v1::RUNNING, 1);
      writer->Write(ev);
      return {grpc::StatusCode::UNAVAILABLE, "stream broken on purpose"};
    }
    const bool fail = req->job_id() == "j-fail";
    for (int step = 1; step <= 5; ++step) {
      *ev.mutable_job() = MakeJob(req->job_id(), dtrain::v1::RUNNING, step);
      writer->Write(ev);
    }
    Job last = MakeJob(req->job_id(), fail ? dtrain::v1::FAILED : dtrain::v1::SUCCEEDED, 5);
    if (fail) last.set_reason("rank 1 on node2 died");
    *ev.mutable_job() = last;
    writer->Write(ev);
    return grpc::Status::OK;
  }
  grpc::Status ListWorkers(grpc::ServerContext*, const dtrain::v1::ListWorkersRequest*,
                           dtrain::v1::ListWorkersResponse* resp) override {
    auto* w = resp->add_workers();
    w->set_id("w-1");
    w->set_host("node1");
    w->set_state(dtrain::v1::IDLE);
    return grpc::Status::OK;
  }

  dtrain::v1::SubmitJobRequest last_submit() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_submit_;
  }

 private:
  std::mutex mu_;
  dtrain::v1::SubmitJobRequest last_submit_;
  int break_polls_ = 0;
};

struct Result {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ClientCli : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
    ASSERT_GT(port_, 0);
    std::string tmpl = ::testing::TempDir() + "/client_cli_XXXXXX";  // one per test process
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  Result Run(const std::string& args) {
    const std::string out = dir_ + "/client_cli_out", err = dir_ + "/client_cli_err";
    const std::string cmd = std::string(DTRAIN_CLI_PATH) + " --coordinator 127.0.0.1:" +
                            std::to_string(port_) + " " + args + " >" + out + " 2>" + err +
                            " </dev/null";
    const int status = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }
  std::string WriteSpec(const std::string& text) {
    const std::string path = dir_ + "/client_cli_spec.yaml";
    std::ofstream(path) << text;
    return path;
  }

  FakeCoordinator service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string dir_;
};

TEST_F(ClientCli, SubmitPrintsTheIdAloneAndSendsSpecAndSets) {
  const auto r = Run("submit " + WriteSpec("name: a\nworkers: 2\n") + " --set epochs=1 --set seed=3");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "j-break\n");
  const auto req = service_.last_submit();
  EXPECT_EQ(req.spec_yaml(), "name: a\nworkers: 2\n");
  ASSERT_EQ(req.set_size(), 2);
  EXPECT_EQ(req.set(1), "seed=3");
}

TEST_F(ClientCli, SubmitInvalidSpecPrintsTheCoordinatorsMessage) {
  const auto r = Run("submit " + WriteSpec("workers: -1\n"));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "workers: must be >= 1, got -1\n");
}

TEST_F(ClientCli, SubmitMissingFileIsUsageError) {
  const auto r = Run("submit /no/such/spec.yaml");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/no/such/spec.yaml"), std::string::npos) << r.err;
}

TEST_F(ClientCli, SubmitWaitSurvivesABrokenStreamAndKeepsStdoutClean) {
  const auto r = Run("submit " + WriteSpec("name: a\n") + " --wait");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "j-break\n");
  EXPECT_NE(r.err.find("SUCCEEDED"), std::string::npos) << r.err;
}

TEST_F(ClientCli, WatchExitCodeIsTheJobsOutcome) {
  auto ok = Run("watch j-ok");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("step 5/5"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("job j-ok SUCCEEDED"), std::string::npos) << ok.out;
  auto fail = Run("watch j-fail");
  EXPECT_EQ(fail.code, 1);
  EXPECT_NE(fail.out.find("rank 1 on node2 died"), std::string::npos) << fail.out;
}

TEST_F(ClientCli, UnknownJobIsNotFound) {
  EXPECT_EQ(Run("status nope").code, 4);
  EXPECT_EQ(Run("watch nope").code, 4);
}

TEST_F(ClientCli, ReadCommandsAndJson) {
  auto list = Run("list");
  EXPECT_EQ(list.code, 0);
  EXPECT_EQ(list.out.rfind("ID ", 0), 0u) << list.out;
  auto json = Run("list --json");
  EXPECT_EQ(json.code, 0);
  EXPECT_EQ(json.out.front(), '[');
  EXPECT_NE(json.out.find("\"state\": \"FAILED\""), std::string::npos) << json.out;
  auto status = Run("status j-ok --json");
  EXPECT_EQ(status.code, 0);
  EXPECT_NE(status.out.find("\"world_size\": 2"), std::string::npos) << status.out;
  auto workers = Run("workers --json");
  EXPECT_EQ(workers.code, 0);
  EXPECT_NE(workers.out.find("\"host\": \"node1\""), std::string::npos) << workers.out;
  auto cancel = Run("cancel j-ok");
  EXPECT_EQ(cancel.code, 0);
  EXPECT_EQ(cancel.out, "job j-ok cancelled\n");
}

TEST_F(ClientCli, UnreachableCoordinator) {
  server_->Shutdown();
  const auto r = Run("list");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("cannot reach the coordinator at 127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("DTRAIN_COORDINATOR"), std::string::npos) << r.err;
}

}  // namespace
