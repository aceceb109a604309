// The demo's plot: bytes delivered over time for each stream, as a self-contained SVG (axes, one
// polyline per stream, a legend, a vertical marker at each network event, shaded outages).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace roam::apps::demo {

struct PlotSeries {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (seconds, bytes)
  bool died = false;                               // mark the last point with a cross
};
struct PlotMarker {
  double t;
  std::string label;
};
struct PlotSpan {  // a shaded interval, e.g. no network at all
  double from, to;
  std::string label;
};

std::string render_svg(const std::string& title, const std::string& subtitle,
                       const std::vector<PlotSeries>& series, const std::vector<PlotMarker>& markers,
                       const std::vector<PlotSpan>& spans, double t_max, double bytes_max);

}  // namespace roam::apps::demo
