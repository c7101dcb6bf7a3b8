// bench/report.cpp — the table, the JSON and the SVG chart of `ipckit bench`.
//
// The chart is written by hand (no plotting dependency): one group of bars per workload,
// each bar the speed of one side relative to Python (Python = 1) on a log scale, labelled
// with the side's real median figure and unit, so it reads at a glance and still carries
// the numbers.
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "harness.hpp"

namespace ipckit::bench {
namespace {

// Columns are aligned by what a terminal shows, and "µ", "÷", "×" take one cell each.
std::size_t display_width(const std::string& text) {
  std::size_t width = 0;
  for (unsigned char c : text)
    if ((c & 0xC0U) != 0x80U) ++width;
  return width;
}

std::string pad(const std::string& text, std::size_t width, bool right_align) {
  std::string fill(width > display_width(text) ? width - display_width(text) : 0, ' ');
  return right_align ? fill + text : text + fill;
}

std::string format_ratio(double ratio) {
  if (ratio <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, ratio < 10 ? "%.2f×" : ratio < 100 ? "%.1f×" : "%.0f×", ratio);
  return text;
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

std::string json_summary(const std::optional<Summary>& s) {
  if (!s) return "null";
  return "{\"median\": " + json_number(s->median) + ", \"min\": " + json_number(s->min) +
         ", \"max\": " + json_number(s->max) + ", \"reps\": " + std::to_string(s->reps) + "}";
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string px(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

std::string decade_label(int exponent) {
  if (exponent >= 0) return std::to_string(static_cast<long long>(std::llround(std::pow(10, exponent)))) + "×";
  return "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + "1×";
}

std::string machine_line(const Machine& m) {
  std::string line = m.cpu_model + " · " + std::to_string(m.cores) + " cores · " + m.kernel + " · " +
                     m.compiler + " · " + (m.build_type.empty() ? "unknown build" : m.build_type) + " build";
  if (m.python_version) line += " · Python " + *m.python_version;
  return line + " · " + m.date;
}

}  // namespace

std::string format_figure(double value) {
  char text[32];
  if (value >= 1e5) {
    static constexpr std::array<const char*, 4> kSuffixes{"k", "M", "G", "T"};
    std::size_t i = 0;
    value /= 1e3;
    while (value >= 1e3 && i + 1 < kSuffixes.size()) {
      value /= 1e3;
      ++i;
    }
    std::snprintf(text, sizeof text, value < 10 ? "%.2f%s" : value < 100 ? "%.1f%s" : "%.0f%s", value,
                  kSuffixes[i]);
  } else if (value >= 100) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else {
    std::snprintf(text, sizeof text, "%.3g", value);
  }
  return text;
}

void print_table(std::ostream& out, const std::vector<Result>& results) {
  const std::vector<std::string> header{"workload", "unit", "ipckit", "Python", "floor", "ipckit÷Python",
                                        "ipckit÷floor"};
  std::vector<std::vector<std::string>> rows{header};
  for (const auto& r : results) {
    auto figure = [](const std::optional<Summary>& s) { return s ? format_figure(s->median) : "-"; };
    auto ratio = [&](const std::optional<Summary>& s) {
      return s ? format_ratio(speedup(r, r.ipckit, *s)) : "-";
    };
    rows.push_back({r.workload, r.unit, format_figure(r.ipckit.median), figure(r.python), figure(r.floor),
                    ratio(r.python), ratio(r.floor)});
  }
  std::vector<std::size_t> widths(header.size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i)
      out << (i == 0 ? "" : "  ") << pad(row[i], widths[i], i >= 2);
    out << "\n";
  }
  const int reps = results.empty() ? 0 : results.front().ipckit.reps;
  out << "\nFigures are medians of " << reps << (reps == 1 ? " repetition" : " repetitions")
      << ". Ratios are speed-ups whatever the unit: above 1× ipckit is faster.\n";
}

void write_json(const std::string& path, const Machine& m, const std::vector<Result>& results) {
  std::ostringstream json;
  json << "{\n  \"machine\": {\n"
       << "    \"cpu_model\": " << json_string(m.cpu_model) << ",\n"
       << "    \"cores\": " << m.cores << ",\n"
       << "    \"kernel\": " << json_string(m.kernel) << ",\n"
       << "    \"compiler\": " << json_string(m.compiler) << ",\n"
       << "    \"build_type\": " << json_string(m.build_type) << ",\n"
       << "    \"python_version\": " << (m.python_version ? json_string(*m.python_version) : "null") << ",\n"
       << "    \"date\": " << json_string(m.date) << ",\n"
       << "    \"command_line\": " << json_string(m.command_line) << "\n  },\n  \"results\": [";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    json << (i == 0 ? "\n" : ",\n") << "    {\"workload\": " << json_string(r.workload)
         << ", \"unit\": " << json_string(r.unit)
         << ", \"lower_is_better\": " << (r.lower_is_better ? "true" : "false") << ",\n"
         << "     \"ipckit\": " << json_summary(r.ipckit) << ",\n"
         << "     \"python\": " << json_summary(r.python) << ",\n"
         << "     \"floor\": " << json_summary(r.floor) << "}";
  }
  json << "\n  ]\n}\n";
  std::ofstream file(path);
  file << json.str();
  if (!file.flush()) throw BenchError("cannot write " + path);
}

void write_chart(const std::string& path, const Machine& machine, const std::vector<Result>& results) {
  struct Bar {
    const char* side;
    const char* color;
    std::optional<Summary> figure;
  };
  constexpr double kBarWidth = 54, kBarGap = 6, kGroupGap = 46;
  constexpr double kLeft = 84, kRight = 24, kTop = 64, kPlotHeight = 300, kHeadroom = 34;
  constexpr double kGroupWidth = 3 * kBarWidth + 2 * kBarGap;
  // A white outline keeps a bar's label readable where it crosses a gridline.
  constexpr const char* kHalo = " stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\"";
  const std::array<std::pair<const char*, const char*>, 3> kSides{
      {{"Python multiprocessing", "#4b8bbe"}, {"ipckit", "#e4572e"}, {"OS floor (bare system calls)", "#8c8c8c"}}};

  // Each bar is a speed relative to the group's baseline: Python, or ipckit when Python
  // was not run for that workload.
  bool any_python = false;
  double lowest = 1, highest = 1;
  std::vector<std::array<Bar, 3>> groups;
  for (const auto& r : results) {
    groups.push_back({Bar{kSides[0].first, kSides[0].second, r.python},
                      Bar{kSides[1].first, kSides[1].second, r.ipckit},
                      Bar{kSides[2].first, kSides[2].second, r.floor}});
    any_python = any_python || r.python.has_value();
    const Summary& base = r.python ? *r.python : r.ipckit;
    for (const auto& bar : groups.back()) {
      if (!bar.figure) continue;
      double relative = speedup(r, *bar.figure, base);
      if (relative <= 0) continue;
      lowest = std::min(lowest, relative);
      highest = std::max(highest, relative);
    }
  }
  int lo = static_cast<int>(std::floor(std::log10(lowest)));
  if (std::log10(lowest) - lo < 0.3) --lo;  // every bar, the baseline's too, stays visible
  int hi = std::max(static_cast<int>(std::ceil(std::log10(highest))), lo + 1);

  const double groups_count = std::max(1.0, static_cast<double>(results.size()));
  const double width = std::max(kLeft + groups_count * (kGroupWidth + kGroupGap) + kRight, 720.0);
  const double plot_width = width - kLeft - kRight;
  const double group_step = plot_width / groups_count;  // groups spread over the width
  const double plot_bottom = kTop + kPlotHeight;
  const double height = plot_bottom + 56 + 36;
  auto y_of = [&](double relative) {
    return plot_bottom - (std::log10(relative) - lo) / (hi - lo) * (kPlotHeight - kHeadroom);
  };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << px(width) << "\" height=\"" << px(height)
      << "\" viewBox=\"0 0 " << px(width) << " " << px(height)
      << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << px(width / 2) << "\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" "
      << "font-weight=\"bold\">ipckit bench: speed relative to "
      << (any_python ? "Python multiprocessing" : "ipckit") << " (log scale, higher is better)</text>\n"
      << "<text x=\"" << px(width / 2) << "\" y=\"48\" text-anchor=\"middle\" font-size=\"11\" fill=\"#444\">"
      << xml_escape(machine_line(machine)) << "</text>\n";

  // Axis: a gridline per decade, the baseline (1×) drawn darker.
  for (int e = lo; e <= hi; ++e) {
    double y = y_of(std::pow(10, e));
    svg << "<line x1=\"" << px(kLeft) << "\" x2=\"" << px(kLeft + plot_width) << "\" y1=\"" << px(y)
        << "\" y2=\"" << px(y) << "\" stroke=\"" << (e == 0 ? "#333" : "#ddd") << "\""
        << (e == 0 ? " stroke-dasharray=\"5,3\"" : "") << "/>\n"
        << "<text x=\"" << px(kLeft - 8) << "\" y=\"" << px(y + 4) << "\" text-anchor=\"end\" font-size=\"11\">"
        << decade_label(e) << "</text>\n";
  }
  const double axis_mid = (kTop + kHeadroom + plot_bottom) / 2;
  svg << "<text transform=\"translate(20," << px(axis_mid) << ") rotate(-90)\" text-anchor=\"middle\" "
      << "font-size=\"12\">speed relative to " << (any_python ? "Python (= 1×)" : "ipckit (= 1×)") << "</text>\n";

  for (std::size_t g = 0; g < results.size(); ++g) {
    const auto& r = results[g];
    const Summary& base = r.python ? *r.python : r.ipckit;
    const double group_x = kLeft + (group_step - kGroupWidth) / 2 + static_cast<double>(g) * group_step;
    for (std::size_t b = 0; b < 3; ++b) {
      const Bar& bar = groups[g][b];
      const double x = group_x + static_cast<double>(b) * (kBarWidth + kBarGap);
      const double cx = x + kBarWidth / 2;
      if (!bar.figure) {
        svg << "<text x=\"" << px(cx) << "\" y=\"" << px(plot_bottom - 6)
            << "\" text-anchor=\"middle\" font-size=\"10\" fill=\"#999\">not run</text>\n";
        continue;
      }
      const double relative = speedup(r, *bar.figure, base);
      const double top = relative > 0 ? y_of(relative) : plot_bottom;
      svg << "<rect x=\"" << px(x) << "\" y=\"" << px(top) << "\" width=\"" << px(kBarWidth)
          << "\" height=\"" << px(plot_bottom - top) << "\" fill=\"" << bar.color << "\">"
          << "<title>" << xml_escape(r.workload) << ", " << bar.side << ": " << format_figure(bar.figure->median)
          << " " << xml_escape(r.unit) << " (min " << format_figure(bar.figure->min) << ", max "
          << format_figure(bar.figure->max) << "), " << format_ratio(relative) << "</title></rect>\n"
          << "<text x=\"" << px(cx) << "\" y=\"" << px(top - 17) << "\" text-anchor=\"middle\" font-size=\"11\" "
          << "font-weight=\"bold\"" << kHalo << ">" << format_figure(bar.figure->median) << "</text>\n"
          << "<text x=\"" << px(cx) << "\" y=\"" << px(top - 5) << "\" text-anchor=\"middle\" font-size=\"10\""
          << kHalo << ">"
          << xml_escape(r.unit) << "</text>\n";
    }
    const double group_mid = group_x + kGroupWidth / 2;
    svg << "<text x=\"" << px(group_mid) << "\" y=\"" << px(plot_bottom + 18)
        << "\" text-anchor=\"middle\" font-size=\"12\" font-weight=\"bold\">" << xml_escape(r.workload)
        << "</text>\n"
        << "<text x=\"" << px(group_mid) << "\" y=\"" << px(plot_bottom + 33)
        << "\" text-anchor=\"middle\" font-size=\"10\" fill=\"#444\">" << xml_escape(r.unit) << ", "
        << (r.lower_is_better ? "lower" : "higher") << " is better</text>\n";
  }
  svg << "<line x1=\"" << px(kLeft) << "\" x2=\"" << px(kLeft + plot_width) << "\" y1=\"" << px(plot_bottom)
      << "\" y2=\"" << px(plot_bottom) << "\" stroke=\"#333\"/>\n";

  // Legend, centred under the plot.
  const double legend_y = plot_bottom + 62;
  double legend_x = width / 2 - 270;
  for (const auto& [label, color] : kSides) {
    svg << "<rect x=\"" << px(legend_x) << "\" y=\"" << px(legend_y - 10) << "\" width=\"12\" height=\"12\" fill=\""
        << color << "\"/>\n<text x=\"" << px(legend_x + 18) << "\" y=\"" << px(legend_y) << "\" font-size=\"12\">"
        << label << "</text>\n";
    legend_x += 36 + 7.0 * static_cast<double>(display_width(label));
  }
  svg << "</svg>\n";

  std::ofstream file(path);
  file << svg.str();
  if (!file.flush()) throw BenchError("cannot write " + path);
}

}  // namespace ipckit::bench
