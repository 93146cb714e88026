#pragma once
// A user's preference matrix from a text file: one row per line, entries separated by commas,
// spaces or tabs; blank lines and lines starting with '#' are skipped. Validated like any game.

#include <rspo/core/error.hpp>
#include <rspo/games/preference_game.hpp>

#include <Eigen/Core>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace rspo::games {

inline preference_game load_preference_game(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw io_error("rspo::games::load_preference_game: cannot open '" + path + "'");
    std::vector<std::vector<double>> rows;
    std::string line;
    std::size_t line_number = 0;
    while (std::getline(in, line)) {
        ++line_number;
        const auto first = line.find_first_not_of(" \t\r");
        if (first == std::string::npos || line[first] == '#') continue;
        std::vector<double> row;
        const char* p = line.c_str();
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r') ++p;
            if (!*p) break;
            char* end = nullptr;
            errno = 0;
            const double v = std::strtod(p, &end);
            if (end == p || (errno == ERANGE && std::abs(v) == HUGE_VAL))  // underflow to a subnormal is fine
                throw io_error("rspo::games::load_preference_game: '" + path + "' line " +
                               std::to_string(line_number) + ": cannot read a number at '" +
                               std::string(p).substr(0, 20) + "'");
            row.push_back(v);
            p = end;
        }
        if (!rows.empty() && row.size() != rows.front().size())
            throw io_error("rspo::games::load_preference_game: '" + path + "' line " +
                           std::to_string(line_number) + " has " + std::to_string(row.size()) +
                           " entries, the first row has " + std::to_string(rows.front().size()));
        rows.push_back(std::move(row));
    }
    if (rows.empty()) throw io_error("rspo::games::load_preference_game: '" + path + "' has no rows");
    const auto n = static_cast<Eigen::Index>(rows.size());
    const auto m = static_cast<Eigen::Index>(rows.front().size());
    Eigen::MatrixXd P(n, m);
    for (Eigen::Index i = 0; i < n; ++i)
        for (Eigen::Index j = 0; j < m; ++j)
            P(i, j) = rows[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)];
    try {
        return preference_game(path, std::move(P));  // checks shape and P + Pᵀ = 1
    } catch (const shape_error& e) {
        throw shape_error("rspo::games::load_preference_game", e.argument(),
                          "'" + path + "': " + e.what());
    } catch (const domain_error& e) {
        throw domain_error("rspo::games::load_preference_game", e.argument(),
                           "'" + path + "': " + e.what());
    }
}

}  // namespace rspo::games
