#pragma once
// R ≡ 0: regularized self-play with it is SPPO (λ = 0).

#include <rspo/regularizers/regularizer.hpp>

#include <Eigen/Core>

#include <string>

namespace rspo {

struct no_regularizer {
    using regularizer_category = regularizer_tag;
    static constexpr bool needs_reference_samples = false;

    double sample_value(double) const { return 0.0; }
    double sample_derivative(double) const { return 0.0; }
    double reference_sample_value(double) const { return 0.0; }
    double reference_sample_derivative(double) const { return 0.0; }

    double value(const Eigen::VectorXd&, const Eigen::VectorXd&) const { return 0.0; }
    Eigen::VectorXd gradient(const Eigen::VectorXd& pi, const Eigen::VectorXd&) const {
        return Eigen::VectorXd::Zero(pi.size());
    }
    double stationarity(double, double) const { return 0.0; }
    double stationarity_slope(double, double) const { return 0.0; }
    double log_linear_weight() const { return 0.0; }

    std::string name() const { return "none"; }
    void validate(const char*) const {}
};

static_assert(LogLinearRegularizer<no_regularizer>);

}  // namespace rspo
