#pragma once
// The oracle of a tabular preference game: P(i ≻ j) looked up in its matrix.

#include <rspo/core/check.hpp>
#include <rspo/games/preference_game.hpp>
#include <rspo/oracles/preference_oracle.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <utility>

namespace rspo {

class matrix_oracle {
public:
    using oracle_category = preference_oracle_tag;
    using prompt_type = single_prompt;
    using response_type = std::size_t;

    explicit matrix_oracle(preference_game game) : game_(std::move(game)) {}

    /// Checked: an action outside [0, n) throws rspo::index_error.
    double prefer(single_prompt, std::size_t a, std::size_t b) const {
        check_index("rspo::matrix_oracle::prefer", "a", a, size());
        check_index("rspo::matrix_oracle::prefer", "b", b, size());
        return game_.preferences()(static_cast<Eigen::Index>(a), static_cast<Eigen::Index>(b));
    }

    [[nodiscard]] std::size_t size() const noexcept { return game_.size(); }
    [[nodiscard]] const Eigen::MatrixXd& preferences() const noexcept { return game_.preferences(); }
    [[nodiscard]] const preference_game& game() const noexcept { return game_; }

private:
    preference_game game_;
};

static_assert(TabularOracle<matrix_oracle>);

}  // namespace rspo
