// `--config FILE`: every command-line flag of every subcommand, read from a TOML file.
//
// Theory of operation
// -------------------
// The file mirrors the command line generically: a key `wait = "10m"` sets the option `--wait`,
// `allow-client = ["10.0.0.0/8", "fc00::/7"]` gives the repeatable `--allow-client` two values,
// `no-roam = true` sets a flag. Nothing here lists roam's flags: the keys are looked up in CLI11's
// option list, so a flag added to any subcommand is configurable at once.
//
//   log-level = "info"          # top level: main's options, and any subcommand's option; a key
//   wait = "30m"                #   that only other subcommands know is ignored by this one
//   [proxy]                     # a table per subcommand: only that subcommand's options
//   listen = "0.0.0.0:1080"
//   deny-dest = ["10.0.0.0/8"]
//
// A subcommand's table wins over the top level; the command line wins over both. Keys the
// program does not know (anywhere, also in tables of other subcommands), values of the wrong
// TOML type and values the option refuses are errors reported as `FILE:LINE:COL: reason`, exit
// status 2. Values that are only checked later, when a subcommand builds its configuration
// (durations, sizes, networks), are traced back to their line by `config_context()`.
//
// It plugs into CLI11's own config mechanism (App::set_config with a custom Config formatter),
// so precedence and required options behave as CLI11 documents: a required `--listen` may come
// from the file. `--config` is accepted before or after the subcommand name.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/common.hpp"

namespace roam::apps {

// One configured value: its inputs as the command line would give them, and where it was written.
struct ConfigValue {
  std::vector<std::string> inputs;
  std::string origin;  // "FILE:LINE:COL"
};

// The file's values for one subcommand (top level merged with its table), keyed by long option
// name without dashes ("allow-client"). Errors carry "FILE:LINE:COL: reason".
using ConfigValues = std::map<std::string, ConfigValue>;

class ConfigFile {
 public:
  // The configuration of this process (one command line per process).
  static ConfigFile& instance();

  // Adds `--config FILE` to `app` and every subcommand it has now (call after adding them all)
  // and makes `--log-level` and `--config` usable after the subcommand name.
  void attach(CLI::App& app);

  // The file given with --config (empty without one).
  const std::string& path() const { return path_; }
  // True when the option (long name without dashes) of the running subcommand was given on the
  // command line, so that it wins over the file, at start and on reload.
  bool from_command_line(const std::string& name) const;
  // Reads the file again for subcommand `sub` ("" for main's options only): checks syntax, keys
  // and types exactly as at start. Values are not applied anywhere: the caller decides.
  core::Result<ConfigValues> reload(const std::string& sub) const;

  // "FILE:LINE:COL: " when `error_text` starts with an option ("--wait: ...") whose value came
  // from the file, else "". For errors found after parsing (session_config and the like).
  std::string context(const std::string& error_text) const;

 private:
  friend class TomlFormatter;
  CLI::App* app_ = nullptr;
  std::string path_;
  std::map<std::string, std::string> origins_;  // "--wait" -> "FILE:LINE:COL"
  std::vector<std::string> cli_given_;          // "--wait"
};

// Shorthand for ConfigFile::instance().context(text).
std::string config_context(const std::string& error_text);

// Applies a reloaded `log-level` (if the file has one and the command line did not set it).
void reload_log_level(const ConfigValues& values);

}  // namespace roam::apps
