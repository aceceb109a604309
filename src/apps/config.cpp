#include "apps/config.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>
#include <toml++/toml.h>

namespace roam::apps {
namespace {

constexpr int kUsageExit = 2;  // SPEC: exit status 2 for usage errors

std::string where(const std::string& file, const toml::source_region& src) {
  return file + ":" + std::to_string(src.begin.line) + ":" + std::to_string(src.begin.column);
}

// The option of `app` whose long name is `key`, if it may come from a file (not --help,
// --version, --config, positionals).
CLI::Option* find_option(CLI::App* app, const std::string& key) {
  if (app == nullptr || key == "help" || key == "help-all" || key == "version" || key == "config")
    return nullptr;
  for (CLI::Option* opt : app->get_options())
    if (opt->get_configurable() && opt->check_lname(key)) return opt;
  return nullptr;
}

CLI::App* find_subcommand(CLI::App& app, const std::string& name) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  return nullptr;
}

// A TOML value as command-line inputs for `opt`; a reason on a type mismatch.
// A flag takes no value on the command line (CLI11's own test when it reads config files).
bool is_flag(const CLI::Option& opt) { return opt.get_expected_min() == 0; }

core::Result<std::vector<std::string>> inputs_for(const CLI::Option& opt, const toml::node& v) {
  if (is_flag(opt)) {
    if (const auto* b = v.as_boolean()) return std::vector<std::string>{b->get() ? "true" : "false"};
    return core::fail(core::Errc::kMalformed, "expected true or false");
  }
  auto scalar = [](const toml::node& n) -> std::optional<std::string> {
    if (const auto* s = n.as_string()) return s->get();
    if (const auto* i = n.as_integer()) return std::to_string(i->get());
    if (const auto* f = n.as_floating_point()) {
      std::ostringstream os;
      os << f->get();
      return os.str();
    }
    return std::nullopt;
  };
  if (const auto* arr = v.as_array()) {
    if (opt.get_items_expected_max() <= 1)
      return core::fail(core::Errc::kMalformed, "takes one value, not a list");
    std::vector<std::string> out;
    for (const toml::node& e : *arr) {
      auto s = scalar(e);
      if (!s) return core::fail(core::Errc::kMalformed, "list items must be strings or numbers");
      out.push_back(std::move(*s));
    }
    return out;
  }
  if (auto s = scalar(v)) return std::vector<std::string>{std::move(*s)};
  return core::fail(core::Errc::kMalformed, "expected a string or a number");
}

// One key of the file, resolved against the program's options.
struct Entry {
  CLI::Option* opt = nullptr;  // null: a top-level key only other subcommands have
  std::string key;
  std::vector<std::string> inputs;
  std::string origin;
};

// Parses `file` and resolves every key for subcommand `sub` (null: main's options only). Every
// key is checked against the program, also those in tables of other subcommands. The result
// holds the top-level entries first, then those of the subcommand's table (which win).
core::Result<std::vector<Entry>> read_entries(CLI::App& app, CLI::App* sub, const std::string& file) {
  std::ifstream in(file);
  if (!in) return core::fail(core::Errc::kMalformed, file + ": cannot read the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  toml::table root;
  try {
    root = toml::parse(ss.str(), file);
  } catch (const toml::parse_error& e) {
    return core::fail(core::Errc::kMalformed,
                      where(file, e.source()) + ": " + std::string(e.description()));
  }
  std::vector<Entry> top, own;
  auto add = [&](std::vector<Entry>& to, CLI::Option* opt, const std::string& key,
                 const toml::node& v) -> core::Result<void> {
    const std::string at = where(file, v.source());
    auto inputs = inputs_for(*opt, v);
    if (!inputs) return core::fail(core::Errc::kMalformed, at + ": " + key + ": " + inputs.error().detail);
    to.push_back({opt, key, std::move(*inputs), at});
    return {};
  };
  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    const std::string at = where(file, k.source());
    if (const auto* table = v.as_table()) {
      CLI::App* target = find_subcommand(app, key);
      if (target == nullptr)
        return core::fail(core::Errc::kMalformed, at + ": [" + key + "]: no such subcommand");
      for (auto&& [tk, tv] : *table) {
        const std::string tkey(tk.str());
        CLI::Option* opt = find_option(target, tkey);
        if (opt == nullptr)
          return core::fail(core::Errc::kMalformed, where(file, tk.source()) + ": unknown key '" +
                                                        tkey + "' (roam " + key + " has no --" + tkey + ")");
        if (target != sub) continue;
        if (auto ok = add(own, opt, tkey, tv); !ok) return tl::make_unexpected(ok.error());
      }
      continue;
    }
    CLI::Option* opt = find_option(&app, key);
    if (opt == nullptr) opt = find_option(sub, key);
    if (opt != nullptr) {
      if (auto ok = add(top, opt, key, v); !ok) return tl::make_unexpected(ok.error());
      continue;
    }
    bool known = false;
    for (CLI::App* s : app.get_subcommands([](CLI::App*) { return true; }))
      known = known || find_option(s, key) != nullptr;
    if (!known) return core::fail(core::Errc::kMalformed, at + ": unknown key '" + key + "' (no subcommand has --" + key + ")");
    top.push_back({nullptr, key, {}, at});  // for another subcommand: ignored here
  }
  top.insert(top.end(), std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()));
  return top;
}

}  // namespace

// CLI11's hook: called once the command line is parsed (so the subcommand is known and options
// given there already hold values) and before required options are checked. Applies the file's
// values itself, so that conversion and validation errors can name their line.
class TomlFormatter : public CLI::Config {
 public:
  TomlFormatter(CLI::App& app, ConfigFile& cfg) : app_(app), cfg_(cfg) {}

  std::string to_config(const CLI::App*, bool, bool, std::string) const override { return {}; }

  std::vector<CLI::ConfigItem> from_config(std::istream&) const override {
    const auto files = app_.get_config_ptr()->as<std::vector<std::string>>();
    if (files.empty()) return {};
    cfg_.path_ = files.back();
    const auto running = app_.get_subcommands();
    CLI::App* sub = running.empty() ? nullptr : running.front();
    for (CLI::App* a : {&app_, sub})
      if (a != nullptr)
        for (CLI::Option* opt : a->get_options())
          if (opt->count() > 0) cfg_.cli_given_.push_back(opt->get_name());
    auto entries = read_entries(app_, sub, cfg_.path_);
    if (!entries) throw CLI::ParseError(entries.error().detail, kUsageExit);
    // A table's value replaces the top level's: apply the last entry per option only.
    std::map<CLI::Option*, const Entry*> last;
    for (const Entry& e : *entries)
      if (e.opt != nullptr) last[e.opt] = &e;
    for (const auto& [opt, e] : last) {
      if (opt->count() > 0) continue;  // the command line wins
      try {
        if (is_flag(*opt)) {
          opt->add_result(opt->get_flag_value(e->key, e->inputs.front()));
        } else {
          opt->add_result(e->inputs);
          opt->run_callback();
        }
      } catch (const CLI::Error& err) {
        throw CLI::ParseError(e->origin + ": " + e->key + ": " + err.what(), kUsageExit);
      }
      cfg_.origins_[opt->get_name()] = e->origin;
    }
    return {};
  }

 private:
  CLI::App& app_;
  ConfigFile& cfg_;
};

ConfigFile& ConfigFile::instance() {
  static ConfigFile cfg;
  return cfg;
}

void ConfigFile::attach(CLI::App& app) {
  app_ = &app;
  app.config_formatter(std::make_shared<TomlFormatter>(app, *this));
  CLI::Option* main_opt = app.set_config(
      "--config", "", "TOML file of options: `key = value` per flag (without the dashes), top level "
                      "or in a [subcommand] table; flags given here win (man roam)");
  // Options unknown to a subcommand fall through to the main app (--log-level after the name).
  app.fallthrough();
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->fallthrough();
    sub->add_option_function<std::string>(
           "--config", [main_opt](const std::string& file) { main_opt->add_result(file); },
           "TOML file with this command's options (keys are the flags without dashes, at the top "
           "level or in a [" + sub->get_name() + "] table); flags given here win. See man roam")
        ->trigger_on_parse()
        ->configurable(false);
  }
}

bool ConfigFile::from_command_line(const std::string& name) const {
  return std::find(cli_given_.begin(), cli_given_.end(), "--" + name) != cli_given_.end();
}

core::Result<ConfigValues> ConfigFile::reload(const std::string& sub) const {
  if (app_ == nullptr || path_.empty()) return ConfigValues{};
  CLI::App* s = sub.empty() ? nullptr : find_subcommand(*app_, sub);
  auto entries = read_entries(*app_, s, path_);
  if (!entries) return tl::make_unexpected(entries.error());
  ConfigValues out;
  for (Entry& e : *entries)
    if (e.opt != nullptr) out[e.key] = ConfigValue{std::move(e.inputs), std::move(e.origin)};
  return out;
}

std::string ConfigFile::context(const std::string& error_text) const {
  const auto colon = error_text.find(':');
  if (colon == std::string::npos) return {};
  auto it = origins_.find(error_text.substr(0, colon));
  return it == origins_.end() ? std::string() : it->second + ": ";
}

std::string config_context(const std::string& error_text) {
  return ConfigFile::instance().context(error_text);
}

void reload_log_level(const ConfigValues& values) {
  if (ConfigFile::instance().from_command_line("log-level")) return;
  auto it = values.find("log-level");
  const std::string level = it == values.end() ? "info" : it->second.inputs.front();
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::info("log level {}", level);
}

}  // namespace roam::apps
