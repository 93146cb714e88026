#pragma once
// rspo: regularized self-play for preference alignment. Include this header; everything under
// detail namespaces is private. docs/architecture.md maps the headers.

#include <rspo/version.hpp>

#include <rspo/core/check.hpp>
#include <rspo/core/error.hpp>
#include <rspo/core/log_space.hpp>
#include <rspo/core/optimizers.hpp>
#include <rspo/core/random.hpp>

#include <rspo/oracles/bradley_terry_oracle.hpp>
#include <rspo/oracles/callback_oracle.hpp>
#include <rspo/oracles/matrix_oracle.hpp>
#include <rspo/oracles/preference_oracle.hpp>
#include <rspo/oracles/win_rate_estimate.hpp>

#include <rspo/regularizers/chi_squared.hpp>
#include <rspo/regularizers/composition.hpp>
#include <rspo/regularizers/forward_kl.hpp>
#include <rspo/regularizers/no_regularizer.hpp>
#include <rspo/regularizers/regularized_argmax.hpp>
#include <rspo/regularizers/regularizer.hpp>
#include <rspo/regularizers/reverse_kl.hpp>

#include <rspo/policies/policy.hpp>
#include <rspo/policies/sequence_policy.hpp>
#include <rspo/policies/tabular_policy.hpp>

#include <rspo/games/load_preference_game.hpp>
#include <rspo/games/preference_game.hpp>
#include <rspo/games/standard_games.hpp>
#include <rspo/games/toy_language_task.hpp>

#include <rspo/algorithms/callbacks.hpp>
#include <rspo/algorithms/inpo.hpp>
#include <rspo/algorithms/iterative_self_play.hpp>
#include <rspo/algorithms/mpo.hpp>
#include <rspo/algorithms/nash_md.hpp>
#include <rspo/algorithms/regularized_equilibrium.hpp>
#include <rspo/algorithms/rspo.hpp>
#include <rspo/algorithms/self_play.hpp>
#include <rspo/algorithms/tabular_algorithm.hpp>

#include <rspo/eval/diversity.hpp>
#include <rspo/eval/game_metrics.hpp>
#include <rspo/eval/length_controlled.hpp>
#include <rspo/eval/sequence_evaluation.hpp>
#include <rspo/eval/win_rate.hpp>

#include <rspo/kernels/reference/token_reductions.hpp>
#include <rspo/kernels/sequence_sums.hpp>
#include <rspo/kernels/simd/token_reductions.hpp>
#include <rspo/kernels/types.hpp>
// CUDA kernels: <rspo/kernels/cuda/token_reductions.cuh>, from CUDA translation units only.
