// Consumer smoke test for an installed rspo (see tests/package/CMakeLists.txt).
// Exit code 0 = the installed package is usable.
#include <rspo/rspo.hpp>

#include <cstdio>

namespace {

// Each check returns true on success and prints why on failure.
bool check_version() {
  if (rspo::version_major != 0) {
    std::fprintf(stderr, "unexpected rspo::version_major %d\n", rspo::version_major);
    return false;
  }
  return true;
}

// A real computation through the installed headers: RSPO on biased RPS reaches the regularized
// equilibrium that the Newton solver finds independently.
bool check_rspo_converges() {
  const auto game = rspo::games::biased_rock_paper_scissors();
  const auto regularizer = 0.1 * rspo::forward_kl{} + 1.0 * rspo::reverse_kl{};
  const auto run = rspo::self_play(rspo::make_rspo(regularizer, {.eta = 0.4, .tau = 0.1}), game,
                                   {.iterations = 3000});
  const Eigen::VectorXd mu = Eigen::VectorXd::Constant(3, 1.0 / 3.0);
  const auto eq = rspo::solve_regularized_equilibrium(game, mu, 0.1, regularizer);
  const double kl = rspo::kl_divergence(eq.policy, run.policy);
  if (!(eq.converged && kl < 1e-10)) {
    std::fprintf(stderr, "RSPO did not reach pi*_tau: KL = %g\n", kl);
    return false;
  }
  return true;
}

}  // namespace

int main() {
  bool ok = true;
  ok = check_version() && ok;
  ok = check_rspo_converges() && ok;
  std::printf("rspo %d.%d.%d package test: %s\n", rspo::version_major, rspo::version_minor,
              rspo::version_patch, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
