// SVG rendering of the demo's plot, written by hand so that the demo needs no plotting tool.
#include "apps/demo_plot.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace roam::apps::demo {
namespace {

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` ticks over `range`.
double nice_step(double range, int want) {
  const double raw = range / want;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

}  // namespace

std::string render_svg(const std::string& title, const std::string& subtitle,
                       const std::vector<PlotSeries>& series, const std::vector<PlotMarker>& markers,
                       const std::vector<PlotSpan>& spans, double t_max, double bytes_max) {
  constexpr double W = 1000, H = 600, X0 = 80, X1 = 970, Y0 = 80, Y1 = 535;
  const double mib_max = std::max(1.0, bytes_max / (1 << 20));
  const double y_step = nice_step(mib_max, 8);
  const double y_top = std::ceil(mib_max * 1.12 / y_step) * y_step;  // headroom for labels
  const double t_step = nice_step(std::max(1.0, t_max), 12);
  const double t_top = std::ceil(t_max / t_step) * t_step;
  auto xs = [&](double t) { return X0 + (X1 - X0) * t / t_top; };
  auto ys = [&](double bytes) { return Y1 - (Y1 - Y0) * (bytes / (1 << 20)) / y_top; };

  std::string s;
  s += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      W, H, W, H);
  s += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", W, H);
  s += fmt::format("<text x=\"{}\" y=\"30\" font-size=\"20\" font-weight=\"bold\" fill=\"#222\">{}</text>\n", X0,
                   esc(title));
  s += fmt::format("<text x=\"{}\" y=\"54\" font-size=\"13\" fill=\"#555\">{}</text>\n", X0, esc(subtitle));

  // Shaded spans, then the grid and axes.
  for (const auto& sp : spans) {
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#f4b6b6\" "
                     "fill-opacity=\"0.45\"/>\n",
                     xs(sp.from), Y0, std::max(1.0, xs(sp.to) - xs(sp.from)), Y1 - Y0);
    if (!sp.label.empty())
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#a33\" text-anchor=\"middle\">{}</text>\n",
                       (xs(sp.from) + xs(sp.to)) / 2, Y1 - 8, esc(sp.label));
  }
  for (double v = 0; v <= y_top + 1e-9; v += y_step) {
    const double y = Y1 - (Y1 - Y0) * v / y_top;
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#e6e6e6\"/>\n", X0, y, X1, y);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#444\" text-anchor=\"end\">{:g}</text>\n",
                     X0 - 8, y + 4, v);
  }
  for (double t = 0; t <= t_top + 1e-9; t += t_step) {
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#444\"/>\n", xs(t), Y1, xs(t),
                     Y1 + 5);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\" fill=\"#444\" text-anchor=\"middle\">{:g}</text>\n",
                     xs(t), Y1 + 20, t);
  }
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", X0, Y0,
                   X1 - X0, Y1 - Y0);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\" fill=\"#222\" text-anchor=\"middle\">time (s)</text>\n",
                   (X0 + X1) / 2, Y1 + 42);
  s += fmt::format("<text x=\"22\" y=\"{}\" font-size=\"13\" fill=\"#222\" text-anchor=\"middle\" "
                   "transform=\"rotate(-90 22 {})\">delivered (MiB), every byte checked</text>\n",
                   (Y0 + Y1) / 2, (Y0 + Y1) / 2);

  // Network events: a dashed line and a label reading down from the top.
  for (const auto& m : markers) {
    const double x = xs(m.t);
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#777\" stroke-dasharray=\"5,4\"/>\n",
                     x, Y0, x, Y1);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" fill=\"#333\" transform=\"rotate(90 {:.1f} {:.1f})\">{}</text>\n",
                     x + 4, Y0 + 6, x + 4, Y0 + 6, esc(m.label));
  }

  // The streams.
  // Earlier series are drawn wider, so that where streams coincide every one stays visible.
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& ser = series[k];
    const double width = 2.0 + 1.5 * static_cast<double>(series.size() - 1 - k);
    if (ser.points.empty()) continue;
    std::string pts;
    // Thin out to at most ~1500 points.
    const std::size_t every = std::max<std::size_t>(1, ser.points.size() / 1500);
    for (std::size_t i = 0; i < ser.points.size(); ++i)
      if (i % every == 0 || i + 1 == ser.points.size())
        pts += fmt::format("{:.1f},{:.1f} ", xs(ser.points[i].first), ys(ser.points[i].second));
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" "
                     "stroke-linejoin=\"round\"/>\n",
                     pts, ser.color, width);
    if (ser.died) {
      const double x = xs(ser.points.back().first), y = ys(ser.points.back().second);
      s += fmt::format("<path d=\"M{:.1f},{:.1f} l10,10 m0,-10 l-10,10\" stroke=\"{}\" stroke-width=\"3\"/>\n",
                       x - 5, y - 5, ser.color);
    }
  }

  // Legend, bottom right inside the plot: the streams climb from the bottom left to the top
  // right, and the event labels hang from the top.
  double lw = 0;
  for (const auto& ser : series) lw = std::max(lw, 6.8 * static_cast<double>(ser.label.size()));
  const double lh = 12 + 20 * static_cast<double>(series.size());
  const double lx = X1 - 14 - (lw + 60), ly = Y1 - 30 - lh;
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{:.0f}\" height=\"{}\" fill=\"#ffffff\" fill-opacity=\"0.92\" "
                   "stroke=\"#bbb\"/>\n",
                   lx, ly, lw + 60, lh);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const double y = ly + 20 + 20 * static_cast<double>(i);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"3\"/>\n",
                     lx + 10, y - 4, lx + 40, y - 4, series[i].color);
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"12\" fill=\"#222\">{}</text>\n", lx + 48, y,
                     esc(series[i].label));
  }
  s += "</svg>\n";
  return s;
}

}  // namespace roam::apps::demo
