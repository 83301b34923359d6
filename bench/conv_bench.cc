// conv_bench: every distinct conv shape of a ResNet (default resnet20 on
// 28x28x1, batch 128), 1 thread: forward, backward-data and backward-weights
// time of the im2col + BLAS kernels (kernels/cpu) vs oneDNN (kernels/dnnl)
// with NCHW at the API (reorders included) and in oneDNN's blocked layout
// (x, y, dy, dx already blocked, as a chained engine would keep them; weights
// [k,c,r,s], their reorder included). Median of --reps runs after one warm-up,
// in process CPU ms (robust to other processes on a shared machine); totals
// weight each shape by how often the model uses it and leave out the stem's
// backward-data (the model never computes the image gradient). Runs itself
// again with OPENBLAS_NUM_THREADS=1 unless that is set.
//   conv_bench [--model resnet20] [--image 28] [--channels 1] [--batch 128] [--reps 7]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <unistd.h>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/conv2d.h"
#include "kernels/dnnl/conv2d_dnnl.h"
#include "tests/unit/rel_error.h"
#include "worker/model/resnet_arch.h"

namespace {

using dtrain::cpu::Conv2dShape;
using Vec = std::vector<float>;

double CpuMs() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return 1e3 * t.tv_sec + 1e-6 * t.tv_nsec;
}
double WallMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Time {
  double cpu = 0, wall = 0;
};

Time Median(int reps, const std::function<void()>& f) {
  f();  // warm-up (creates the oneDNN primitives)
  std::vector<double> c, w;
  for (int i = 0; i < reps; ++i) {
    const double c0 = CpuMs(), w0 = WallMs();
    f();
    c.push_back(CpuMs() - c0);
    w.push_back(WallMs() - w0);
  }
  std::nth_element(c.begin(), c.begin() + reps / 2, c.end());
  std::nth_element(w.begin(), w.begin() + reps / 2, w.end());
  return {c[reps / 2], w[reps / 2]};
}

struct Use {
  Conv2dShape s;
  std::string first;  // the first layer using it
  int count = 0;
  bool needs_dx = true;
};

std::vector<Use> DistinctConvs(const std::string& model, int channels, int image, int batch) {
  const auto a = dtrain::model::BuildResnetArch(model, channels, 10, image);
  std::vector<const dtrain::model::ArchConv*> all{&a.stem_conv};
  for (const auto& b : a.blocks) {
    for (int i = 0; i < b.nconv; ++i) all.push_back(&b.conv[i]);
    if (b.proj) all.push_back(&b.pconv);
  }
  std::vector<Use> out;
  for (const auto* cv : all) {
    Conv2dShape s = cv->shape;
    s.n = batch;
    auto same = [&](const Use& u) {
      const Conv2dShape& t = u.s;
      return t.c == s.c && t.h == s.h && t.w == s.w && t.k == s.k && t.r == s.r && t.s == s.s &&
             t.stride == s.stride && t.pad == s.pad;
    };
    auto it = std::find_if(out.begin(), out.end(), same);
    if (it == out.end()) {
      out.push_back({s, cv->name, 0, cv != &a.stem_conv});
      it = out.end() - 1;
    }
    ++it->count;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "resnet20";
  int image = 28, channels = 1, batch = 128, reps = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--model") model = argv[i + 1];
    else if (k == "--image") image = std::atoi(argv[i + 1]);
    else if (k == "--channels") channels = std::atoi(argv[i + 1]);
    else if (k == "--batch") batch = std::atoi(argv[i + 1]);
    else if (k == "--reps") reps = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "conv_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  // OpenBLAS sizes its pool at load and an idle pool thread spins on a core
  // (doubling the process CPU time): start again with one, as dtrain-worker does.
  if (!std::getenv("OPENBLAS_NUM_THREADS")) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
    std::perror("conv_bench: re-exec with OPENBLAS_NUM_THREADS=1 failed; continuing");
  }
  openblas_set_num_threads(1);
  dtrain::onednn::Conv2dDnnl dnnl(1);
  std::printf("conv_bench: %s %dx%dx%d, batch %d, 1 thread, median of %d, process CPU ms; %s\n",
              model.c_str(), image, image, channels, batch, reps,
              dtrain::onednn::RuntimeInfo().c_str());
  std::printf("%-22s %3s | %-23s | %-23s | %-23s\n", "", "", "forward", "backward data",
              "backward weights");
  std::printf("%-22s %3s | %7s %7s %7s | %7s %7s %7s | %7s %7s %7s\n", "shape (first use)", "x",
              "blas", "dnnl", "blocked", "blas", "dnnl", "blocked", "blas", "dnnl", "blocked");

  std::mt19937 rng(1);
  Time total[3][3];  // [op][impl]
  std::vector<std::string> impls;
  for (const Use& u : DistinctConvs(model, channels, image, batch)) {
    const Conv2dShape& s = u.s;
    const Vec x = dtrain::testing::RandomUniform(s.in_size(), rng), w = dtrain::testing::RandomUniform(s.weight_size(), rng),
              dy = dtrain::testing::RandomUniform(s.out_size(), rng);
    Vec y(s.out_size()), dx(s.in_size()), dw(s.weight_size()),
        ws(dtrain::cpu::Conv2dWorkspaceSize(s));
    const auto xd = dnnl.SrcDesc(s), yd = dnnl.DstDesc(s);
    Vec xb(xd.get_size() / 4), yb(yd.get_size() / 4), dyb(yd.get_size() / 4),
        dxb(xd.get_size() / 4);
    dnnl.Reorder(dtrain::onednn::Nchw(s.n, s.c, s.h, s.w), x.data(), xd, xb.data());
    dnnl.Reorder(dtrain::onednn::Nchw(s.n, s.k, s.out_h(), s.out_w()), dy.data(), yd,
                 dyb.data());

    Time t[3][3];
    t[0][0] = Median(reps, [&] { dtrain::cpu::Conv2dForward(s, x.data(), w.data(), y.data(), ws.data()); });
    t[0][1] = Median(reps, [&] { dnnl.Forward(s, x.data(), w.data(), y.data()); });
    t[0][2] = Median(reps, [&] { dnnl.ForwardBlocked(s, xd, xb.data(), w.data(), yb.data()); });
    if (u.needs_dx) {
      t[1][0] = Median(reps, [&] {
        dtrain::cpu::Conv2dBackward<float>(s, nullptr, w.data(), dy.data(), dx.data(), false,
                                           nullptr, ws.data());
      });
      t[1][1] = Median(reps, [&] { dnnl.Backward(s, nullptr, w.data(), dy.data(), dx.data(), false, nullptr); });
      t[1][2] = Median(reps, [&] {
        dnnl.BackwardBlocked(s, xd, nullptr, w.data(), yd, dyb.data(), dxb.data(), false, nullptr);
      });
    }
    t[2][0] = Median(reps, [&] {
      dtrain::cpu::Conv2dBackward<float>(s, x.data(), nullptr, dy.data(), nullptr, false,
                                         dw.data(), ws.data());
    });
    t[2][1] = Median(reps, [&] { dnnl.Backward(s, x.data(), nullptr, dy.data(), nullptr, false, dw.data()); });
    t[2][2] = Median(reps, [&] {
      dnnl.BackwardBlocked(s, xd, xb.data(), nullptr, yd, dyb.data(), nullptr, false, dw.data());
    });

    char name[64];
    std::snprintf(name, sizeof name, "%dx%d c%d->%d %dx%d/%d", s.h, s.w, s.c, s.k, s.r, s.s,
                  s.stride);
    std::printf("%-22s %3d |", name, u.count);
    for (int op = 0; op < 3; ++op) {
      for (int im = 0; im < 3; ++im) {
        if (op == 1 && !u.needs_dx) std::printf(" %7s", "-");
        else std::printf(" %7.2f", t[op][im].cpu);
        total[op][im].cpu += u.count * t[op][im].cpu;
        total[op][im].wall += u.count * t[op][im].wall;
      }
      std::printf(op < 2 ? " |" : "\n");
    }
    impls.push_back(std::string(name) + " (" + u.first + "): " + dnnl.ImplInfo(s));
  }
  for (const char* kind : {"cpu", "wall"}) {
    const bool cpu = kind[0] == 'c';
    std::printf("%-22s %3s |", cpu ? "per step (CPU ms)" : "per step (wall ms)", "");
    double sum[3] = {0, 0, 0};
    for (int op = 0; op < 3; ++op) {
      for (int im = 0; im < 3; ++im) {
        const double v = cpu ? total[op][im].cpu : total[op][im].wall;
        sum[im] += v;
        std::printf(" %7.1f", v);
      }
      std::printf(op < 2 ? " |" : "\n");
    }
    std::printf("%-22s %3s |", "  speed-up vs blas", "");
    for (int op = 0; op < 3; ++op) {
      const double b = cpu ? total[op][0].cpu : total[op][0].wall;
      for (int im = 0; im < 3; ++im)
        std::printf(" %6.2fx", b / (cpu ? total[op][im].cpu : total[op][im].wall));
      std::printf(op < 2 ? " |" : "\n");
    }
    std::printf("  all convs, fwd+bwd: blas %.1f  dnnl %.1f (%.2fx)  blocked %.1f (%.2fx) ms\n",
                sum[0], sum[1], sum[0] / sum[1], sum[2], sum[0] / sum[2]);
  }
  std::printf("oneDNN implementations:\n");
  for (const std::string& s : impls) std::printf("  %s\n", s.c_str());
  return 0;
}
