#pragma once
// Plain-text tables for the examples' reports: columns padded to their widest cell, a rule under
// the header row. Example support code, not library code.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace text_table {

struct style {
    std::string indent = "  ";  ///< before every line
    /// Whether column c of n is left-aligned (text) rather than right-aligned (numbers).
    std::function<bool(std::size_t c, std::size_t n)> left_aligned = [](std::size_t c, std::size_t) {
        return c == 0;
    };
};

/// Prints rows (the first is the header) with ASCII cells; trailing spaces are dropped.
inline void print(std::ostream& out, const std::vector<std::vector<std::string>>& rows, const style& s = {}) {
    if (rows.empty()) return;
    std::vector<std::size_t> width(rows.front().size(), 0);
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::string line;
        for (std::size_t c = 0; c < rows[r].size(); ++c) {
            const std::string& cell = rows[r][c];
            const std::string pad(width[c] - cell.size(), ' ');
            line += c ? "  " : "";
            line += s.left_aligned(c, rows[r].size()) ? cell + pad : pad + cell;
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << s.indent << line << '\n';
        if (r == 0) {
            std::size_t total = 0;
            for (const auto w : width) total += w + 2;
            out << s.indent << std::string(total - 2, '-') << '\n';
        }
    }
}

}  // namespace text_table
