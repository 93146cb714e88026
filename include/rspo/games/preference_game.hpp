#pragma once
// A tabular preference game: one prompt, n responses, a validated matrix P(i ≻ j) that may be
// intransitive, and its Nash equilibrium where it is known (the fixtures in standard_games.hpp).

#include <rspo/core/check.hpp>

#include <Eigen/Core>

#include <optional>
#include <string>
#include <utility>

namespace rspo {

class preference_game {
public:
    /// Throws rspo::shape_error / rspo::domain_error unless P is square with entries in [0, 1] and
    /// P + Pᵀ = 1 (within validation_tolerance::complementary).
    preference_game(std::string name, Eigen::MatrixXd preferences,
                    std::optional<Eigen::VectorXd> nash_equilibrium = std::nullopt)
        : name_(std::move(name)),
          preferences_(std::move(preferences)),
          nash_(std::move(nash_equilibrium)) {
        check_preference_matrix("rspo::preference_game", "preferences", preferences_);
        if (nash_) {
            check_size("rspo::preference_game", "nash_equilibrium",
                       static_cast<std::size_t>(nash_->size()), size(), "preferences");
            check_distribution("rspo::preference_game", "nash_equilibrium", *nash_);
        }
    }

    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::size_t size() const noexcept {
        return static_cast<std::size_t>(preferences_.rows());
    }
    /// P(i ≻ j) at (i, j).
    [[nodiscard]] const Eigen::MatrixXd& preferences() const noexcept { return preferences_; }
    /// A known symmetric Nash equilibrium (von Neumann winner), if the game has one on record.
    [[nodiscard]] const std::optional<Eigen::VectorXd>& nash_equilibrium() const noexcept {
        return nash_;
    }
    /// Lipschitz constant L = max |P_ij − ½| used in step-size conditions (docs/math §1).
    [[nodiscard]] double lipschitz() const { return (preferences_.array() - 0.5).abs().maxCoeff(); }

    /// q(π) = P π: the win rate of each response against π.
    [[nodiscard]] Eigen::VectorXd win_rates(const Eigen::VectorXd& pi) const {
        check_size("rspo::preference_game::win_rates", "pi", static_cast<std::size_t>(pi.size()),
                   size(), "the game");
        return preferences_ * pi;
    }

private:
    std::string name_;
    Eigen::MatrixXd preferences_;
    std::optional<Eigen::VectorXd> nash_;
};

}  // namespace rspo
