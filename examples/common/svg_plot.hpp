#pragma once
// Minimal SVG charts for rspo's examples (support code, not part of the library): a row of
// line-chart panels (linear or log-scale y, optional markers and error bars) and a row of ternary
// plots (trajectories on the 3-action simplex), each figure with one legend on the right. Standard
// library only; plain SVG 1.1 that browsers and rsvg-convert render.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace svg_plot {

/// How a line (or a legend swatch) is drawn.
struct line_style {
    std::string color = "#000000";
    bool dashed = false;
    double width = 1.6;
    double opacity = 1.0;
};

enum class marker_shape { circle, square, diamond, star, triangle };

/// One legend row: a line swatch, a marker, a heading (bold, no swatch) or a note (text only).
struct legend_entry {
    std::string label = {};
    line_style line = {};  ///< the swatch; its colour also fills a marker
    std::optional<marker_shape> marker = std::nullopt;  ///< draw this marker instead of a line
    bool heading = false;
    bool note = false;
};

struct figure_options {
    std::string title = {};
    std::vector<legend_entry> legend = {};
    double panel_width = 520.0;
    double panel_height = 400.0;
    double legend_width = 250.0;
};

// ---- Line charts ----

struct line_series {
    line_style style = {};
    std::vector<double> x = {};
    std::vector<double> y = {};  ///< same length as x; a non-finite point breaks the line
    /// Optional error bars (e.g. ± one standard error), aligned with x and y: drawn from
    /// y − y_error to y + y_error (x likewise) with small caps; empty = none, a non-finite or
    /// non-positive entry = no bar at that point.
    std::vector<double> y_error = {};
    std::vector<double> x_error = {};
    /// Optional marker at every finite point (filled with the line colour).
    std::optional<marker_shape> marker = std::nullopt;
    double marker_size = 4.0;
};

struct line_panel {
    std::string title = {};
    std::string x_label = {};
    std::string y_label = {};
    bool log_y = false;
    /// Log scale only: smaller values (exact zeros included) are drawn at this floor.
    double y_floor = 1e-16;
    std::vector<line_series> series = {};
    /// x ticks at least this far apart (e.g. 1 for iteration numbers); 0 = automatic.
    double x_tick_step = 0.0;
    /// Empty space on both sides of the x data, as a fraction of its range (so that markers and
    /// error bars at the ends are not cut by the frame).
    double x_margin = 0.0;
};

// ---- Ternary (simplex) plots: p = (p0, p1, p2), p0 + p1 + p2 = 1, is drawn at the p-weighted
// average of the triangle's corners; corner k is the pure policy on action k (0 bottom left,
// 1 bottom right, 2 top). ----

using point3 = std::array<double, 3>;

struct ternary_series {
    line_style style = {};
    std::vector<point3> points = {};
};

struct ternary_marker {
    point3 at = {};
    marker_shape shape = marker_shape::circle;
    std::string color = "#000000";
    double size = 6.0;
};

struct ternary_panel {
    std::string title = {};
    std::array<std::string, 3> corner_labels = {};
    std::vector<ternary_series> series = {};
    std::vector<ternary_marker> markers = {};  ///< drawn on top of the series, in order
};

namespace detail {

using xy = std::array<double, 2>;

inline std::string escape(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

/// Coordinates with two decimals: sub-pixel precision, small files.
inline std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}

/// name="value" for a number.
inline std::string attr(const char* name, double v) {
    return std::string(" ") + name + "=\"" + num(v) + '"';
}

inline std::string text(double x, double y, const std::string& content,
                        const std::string& extra = "") {
    return "<text" + attr("x", x) + attr("y", y) + ' ' + extra + '>' + escape(content) +
           "</text>\n";
}

inline std::string line(xy a, xy b, const std::string& paint) {
    return "<line" + attr("x1", a[0]) + attr("y1", a[1]) + attr("x2", b[0]) + attr("y2", b[1]) +
           ' ' + paint + "/>\n";
}

inline std::string rect(double x, double y, double w, double h, const std::string& paint) {
    return "<rect" + attr("x", x) + attr("y", y) + attr("width", w) + attr("height", h) + ' ' +
           paint + "/>\n";
}

inline std::string polygon(const std::vector<xy>& points, const std::string& paint) {
    std::string p;
    for (const auto& q : points) p += num(q[0]) + ',' + num(q[1]) + ' ';
    return "<polygon points=\"" + p + "\" " + paint + "/>\n";
}

inline std::string stroke(const line_style& s) {
    std::string out = "fill=\"none\" stroke=\"" + escape(s.color) + '"' +
                      attr("stroke-width", s.width) +
                      " stroke-linejoin=\"round\" stroke-linecap=\"round\"";
    if (s.dashed)
        out += " stroke-dasharray=\"" + num(4.0 * s.width) + ',' + num(3.0 * s.width) + '"';
    if (s.opacity < 1.0) out += attr("stroke-opacity", s.opacity);
    return out;
}

constexpr const char* grid_paint = "stroke=\"#e3e3e3\" stroke-width=\"1\"";
constexpr const char* frame_paint = "fill=\"none\" stroke=\"#444444\" stroke-width=\"1.2\"";
constexpr const char* title_font = "text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\"";

/// One polyline per run of finite points (a non-finite point breaks the line).
inline std::string polylines(const std::vector<xy>& points, const line_style& style,
                             const std::string& clip_id = "") {
    std::string out, run;
    std::size_t count = 0;
    const auto flush = [&] {
        if (count >= 2) {
            out += "<polyline " + stroke(style);
            if (!clip_id.empty()) out += " clip-path=\"url(#" + clip_id + ")\"";
            out += " points=\"" + run + "\"/>\n";
        }
        run.clear();
        count = 0;
    };
    for (const auto& p : points) {
        if (!std::isfinite(p[0]) || !std::isfinite(p[1])) {
            flush();
            continue;
        }
        // Appended piece by piece: `const char* + std::string&&` trips GCC 12's -Wrestrict
        // false positive (GCC bug 105329) once this is inlined into a larger function.
        if (count) run += ' ';
        run += num(p[0]);
        run += ',';
        run += num(p[1]);
        ++count;
    }
    flush();
    return out;
}

inline std::string marker(xy at, marker_shape shape, const std::string& color, double r) {
    const std::string paint =
        "fill=\"" + escape(color) + "\" stroke=\"#000000\" stroke-width=\"0.8\"";
    const double x = at[0], y = at[1], d = 1.3 * r;
    switch (shape) {
        case marker_shape::circle:
            return "<circle" + attr("cx", x) + attr("cy", y) + attr("r", r) + ' ' + paint + "/>\n";
        case marker_shape::square: return rect(x - r, y - r, 2 * r, 2 * r, paint);
        case marker_shape::diamond:
            return polygon({{x, y - d}, {x + d, y}, {x, y + d}, {x - d, y}}, paint);
        case marker_shape::triangle:
            return polygon({{x, y - d}, {x + 0.866 * d, y + 0.5 * d}, {x - 0.866 * d, y + 0.5 * d}},
                           paint);
        case marker_shape::star: {
            std::vector<xy> points;
            for (int k = 0; k < 10; ++k) {
                const double radius = (k % 2 == 0 ? 1.7 : 0.7) * r;
                const double angle = std::numbers::pi * (k / 5.0 - 0.5);
                points.push_back({x + radius * std::cos(angle), y + radius * std::sin(angle)});
            }
            return polygon(points, paint);
        }
    }
    return {};
}

/// "Nice" linear ticks (1, 2 or 5 × 10^k apart) covering [lo, hi].
inline std::vector<double> linear_ticks(double lo, double hi, int target = 6,
                                        double min_step = 0.0) {
    if (!(hi > lo)) return {lo};
    const double raw = (hi - lo) / target;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = 10.0 * magnitude;
    for (const double m : {1.0, 2.0, 5.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    step = std::max(step, min_step);
    std::vector<double> ticks;
    for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step)
        ticks.push_back(std::abs(t) < 1e-12 * step ? 0.0 : t);  // no "-0"
    return ticks;
}

inline std::string tick_label(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

inline std::string svg_open(double width, double height) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\"" +
           attr("width", width) + attr("height", height) + " viewBox=\"0 0 " + num(width) + ' ' +
           num(height) +
           "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n" +
           rect(0, 0, width, height, "fill=\"#ffffff\"");
}

inline std::string legend(const std::vector<legend_entry>& entries, double x, double y) {
    std::string out;
    for (const auto& e : entries) {
        if (e.heading) {
            y += 6;  // a little air above each group
            out += text(x, y + 4, e.label, "font-weight=\"bold\"");
        } else if (e.note) {
            out += text(x, y + 4, e.label, "fill=\"#444444\"");
        } else {
            out += e.marker ? marker({x + 14, y}, *e.marker, e.line.color, 5.0)
                            : line({x, y}, {x + 28, y}, stroke(e.line));
            out += text(x + 36, y + 4, e.label);
        }
        y += 19;
    }
    return out;
}

inline double header_height(const figure_options& options) {
    return options.title.empty() ? 10.0 : 40.0;
}

inline std::string figure_title(const figure_options& options, double width) {
    if (options.title.empty()) return {};
    return text(width / 2, 26, options.title,
                "text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\"");
}

/// errors[i] if it is a usable half-width (finite, > 0), else 0 (no bar).
inline double error_at(const std::vector<double>& errors, std::size_t i) {
    return i < errors.size() && std::isfinite(errors[i]) && errors[i] > 0.0 ? errors[i] : 0.0;
}

/// The data range of a panel: x from the data (error bars included, plus x_margin); y in whole
/// decades (log) or padded by 5%.
struct panel_range {
    double x_lo, x_hi, y_lo, y_hi;  ///< y in log10 units on a log axis
};

inline panel_range range_of(const line_panel& panel) {
    constexpr double inf = std::numeric_limits<double>::infinity();
    panel_range r{inf, -inf, inf, -inf};
    for (const auto& s : panel.series)
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            // The extent of the point with its error bars (if any).
            const double dx = error_at(s.x_error, i), dy = error_at(s.y_error, i);
            const auto axis_y = [&](double v) {
                return panel.log_y ? std::log10(std::max(v, panel.y_floor)) : v;
            };
            r.x_lo = std::min(r.x_lo, s.x[i] - dx);
            r.x_hi = std::max(r.x_hi, s.x[i] + dx);
            r.y_lo = std::min(r.y_lo, axis_y(s.y[i] - dy));
            r.y_hi = std::max(r.y_hi, axis_y(s.y[i] + dy));
        }
    if (!std::isfinite(r.x_lo)) {  // no finite data
        r = {0.0, 1.0, 0.0, 1.0};
    }
    if (r.x_hi <= r.x_lo) r.x_hi = r.x_lo + 1.0;
    const double x_pad = panel.x_margin * (r.x_hi - r.x_lo);
    r.x_lo -= x_pad;
    r.x_hi += x_pad;
    if (panel.log_y) {
        r.y_lo = std::floor(r.y_lo);
        r.y_hi = std::max(std::ceil(r.y_hi), r.y_lo + 1.0);
    } else {
        const double pad = r.y_hi > r.y_lo ? 0.05 * (r.y_hi - r.y_lo) : 1.0;
        r.y_lo -= pad;
        r.y_hi += pad;
    }
    return r;
}

}  // namespace detail

/// A row of line-chart panels, each with its own axes, and the legend on the right.
inline std::string line_chart(const std::vector<line_panel>& panels,
                              const figure_options& options) {
    using namespace detail;
    const double pw = options.panel_width, ph = options.panel_height;
    const double top = header_height(options);
    const double width = pw * static_cast<double>(panels.size()) + options.legend_width;
    // The plot area inside each panel.
    const double left = 78, right = 18, plot_top = 30, bottom = 52;
    const double plot_w = pw - left - right, plot_h = ph - plot_top - bottom;

    std::string out = svg_open(width, top + ph) + figure_title(options, width);
    for (std::size_t k = 0; k < panels.size(); ++k) {
        const line_panel& panel = panels[k];
        const double x0 = pw * static_cast<double>(k) + left, y0 = top + plot_top;
        const panel_range r = range_of(panel);
        const auto sx = [&](double x) { return x0 + (x - r.x_lo) / (r.x_hi - r.x_lo) * plot_w; };
        // v is in axis units (log10 on a log axis).
        const auto sy_axis = [&](double v) {
            return y0 + (r.y_hi - v) / (r.y_hi - r.y_lo) * plot_h;
        };
        const auto sy = [&](double y) {
            return sy_axis(panel.log_y ? std::log10(std::max(y, panel.y_floor)) : y);
        };

        const std::string clip_id = "clip" + std::to_string(k);
        out += "<clipPath id=\"" + clip_id + "\">" + rect(x0, y0, plot_w, plot_h, "") +
               "</clipPath>\n";
        out += text(x0 + plot_w / 2, y0 - 10, panel.title, title_font);

        // Grid lines with tick labels.
        for (const double t : linear_ticks(r.x_lo, r.x_hi, 6, panel.x_tick_step)) {
            out += line({sx(t), y0}, {sx(t), y0 + plot_h}, grid_paint);
            out += text(sx(t), y0 + plot_h + 17, tick_label(t), "text-anchor=\"middle\"");
        }
        if (panel.log_y) {
            const int lo = static_cast<int>(r.y_lo), hi = static_cast<int>(r.y_hi);
            const int every = hi - lo <= 8 ? 1 : hi - lo <= 16 ? 2 : hi - lo <= 32 ? 4 : 8;
            for (int d = lo; d <= hi; ++d) {
                const double y = sy_axis(d);
                out += line({x0, y}, {x0 + plot_w, y}, grid_paint);
                if (d % every == 0)  // labels at round decades: 1e0, 1e-4, 1e-8, ...
                    out += text(x0 - 6, y + 4, "1e" + std::to_string(d), "text-anchor=\"end\"");
            }
        } else {
            for (const double t : linear_ticks(r.y_lo, r.y_hi)) {
                out += line({x0, sy(t)}, {x0 + plot_w, sy(t)}, grid_paint);
                out += text(x0 - 6, sy(t) + 4, tick_label(t), "text-anchor=\"end\"");
            }
        }
        out += rect(x0, y0, plot_w, plot_h, frame_paint);
        out += text(x0 + plot_w / 2, y0 + plot_h + 40, panel.x_label, "text-anchor=\"middle\"");
        const double ylx = x0 - 60, yly = y0 + plot_h / 2;
        out += text(
            ylx, yly, panel.y_label,
            "text-anchor=\"middle\" transform=\"rotate(-90 " + num(ylx) + ' ' + num(yly) + ")\"");

        for (const auto& s : panel.series) {
            std::vector<xy> points;
            for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
                points.push_back({sx(s.x[i]), std::isfinite(s.y[i]) ? sy(s.y[i]) : s.y[i]});
            out += polylines(points, s.style, clip_id);
            // Error bars (with caps) and markers on top of the line.
            std::string bar_paint = "stroke=\"" + escape(s.style.color) + "\"" +
                                    attr("stroke-width", std::max(1.0, 0.7 * s.style.width));
            if (s.style.opacity < 1.0) bar_paint += attr("stroke-opacity", s.style.opacity);
            constexpr double cap = 3.5;  // half-width of a cap, pixels
            for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
                if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
                const double px = sx(s.x[i]), py = sy(s.y[i]);
                if (const double dy = error_at(s.y_error, i); dy > 0.0) {
                    const double lo = sy(s.y[i] - dy), hi = sy(s.y[i] + dy);
                    out += line({px, lo}, {px, hi}, bar_paint);
                    out += line({px - cap, lo}, {px + cap, lo}, bar_paint);
                    out += line({px - cap, hi}, {px + cap, hi}, bar_paint);
                }
                if (const double dx = error_at(s.x_error, i); dx > 0.0) {
                    const double lo = sx(s.x[i] - dx), hi = sx(s.x[i] + dx);
                    out += line({lo, py}, {hi, py}, bar_paint);
                    out += line({lo, py - cap}, {lo, py + cap}, bar_paint);
                    out += line({hi, py - cap}, {hi, py + cap}, bar_paint);
                }
                if (s.marker) out += marker({px, py}, *s.marker, s.style.color, s.marker_size);
            }
        }
    }
    out += legend(options.legend, pw * static_cast<double>(panels.size()) + 10, top + plot_top + 8);
    return out + "</svg>\n";
}

/// A row of ternary plots with grid lines every 0.2, and the legend on the right.
inline std::string ternary_chart(const std::vector<ternary_panel>& panels,
                                 const figure_options& options) {
    using namespace detail;
    const double pw = options.panel_width, ph = options.panel_height;
    const double top = header_height(options);
    const double width = pw * static_cast<double>(panels.size()) + options.legend_width;
    const double sin60 = std::sqrt(3.0) / 2.0;
    const double side = std::min(pw - 90, (ph - 90) / sin60);

    std::string out = svg_open(width, top + ph) + figure_title(options, width);
    for (std::size_t k = 0; k < panels.size(); ++k) {
        const ternary_panel& panel = panels[k];
        const double cx = pw * (static_cast<double>(k) + 0.5), base = top + ph - 45;
        const std::array<xy, 3> corner{xy{cx - side / 2, base}, xy{cx + side / 2, base},
                                       xy{cx, base - side * sin60}};
        const auto at = [&](const point3& p) -> xy {
            const double sum = p[0] + p[1] + p[2];
            xy q{0.0, 0.0};
            for (std::size_t j = 0; j < 3; ++j)
                for (std::size_t c = 0; c < 2; ++c) q[c] += p[j] / sum * corner[j][c];
            return q;
        };

        out += text(cx, top + 18, panel.title, title_font);
        // Grid: for each coordinate j the lines p_j = 0.2, 0.4, 0.6, 0.8.
        for (std::size_t j = 0; j < 3; ++j)
            for (int g = 1; g <= 4; ++g) {
                const double c = 0.2 * g;
                point3 a{}, b{};
                a[j] = b[j] = c;
                a[(j + 1) % 3] = 1 - c;
                b[(j + 2) % 3] = 1 - c;
                out += line(at(a), at(b), grid_paint);
            }
        out += polygon({corner[0], corner[1], corner[2]}, frame_paint);
        const std::string centred = "text-anchor=\"middle\"";
        out += text(corner[0][0] - 4, corner[0][1] + 20, panel.corner_labels[0], centred);
        out += text(corner[1][0] + 4, corner[1][1] + 20, panel.corner_labels[1], centred);
        out += text(corner[2][0], corner[2][1] - 9, panel.corner_labels[2], centred);

        for (const auto& s : panel.series) {
            std::vector<xy> points;
            points.reserve(s.points.size());
            for (const auto& p : s.points) points.push_back(at(p));
            out += polylines(points, s.style);
        }
        for (const auto& m : panel.markers) out += marker(at(m.at), m.shape, m.color, m.size);
    }
    out += legend(options.legend, pw * static_cast<double>(panels.size()) + 10, top + 40);
    return out + "</svg>\n";
}

/// Writes `content` to `path`; throws std::runtime_error if it cannot.
inline void write_file(const std::filesystem::path& path, const std::string& content) {
    std::ofstream out(path, std::ios::binary);
    out << content;
    out.close();
    if (!out) throw std::runtime_error("cannot write '" + path.string() + "'");
}

}  // namespace svg_plot
