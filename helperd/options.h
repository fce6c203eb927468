// options: helperd's settings. Command-line flags (CLI11) and, priority below them, the TOML
// config file (config.h). Pure parsing: it must not include the daemon's parts (server,
// app_driver, systemd) nor do I/O beyond printing CLI11's messages.
#ifndef ONDEMAND_HELPERD_OPTIONS_H
#define ONDEMAND_HELPERD_OPTIONS_H

#include "config.h"
#include "log.h"
#include "sdbus.h"

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace ondemand::helperd {

struct options {
    std::string socket;
    bus_address bus;
    std::vector<std::string> allow_units;
    std::vector<uid_t> allow_uids;
    std::vector<gid_t> allow_gids;
    mode_t socket_mode = 0660;
    log_level level = log_level::info;
    // Limits (docs/helperd.md, "Limits"); the defaults are resource_limits' (policy.h).
    std::size_t max_connections = 512;
    std::size_t max_connections_per_uid = 256;
    std::size_t max_apps = 4096;
    std::size_t line_timeout_ms = 10000;
    std::size_t max_waits_per_client = 4096;
    // The key file (auth.h): when set, a connection's first line must be HELLO with its key.
    std::string key_file;
    std::size_t stop_timeout_ms = 120000;
    // The app registry: empty apps_dir means none (helperd trusts its clients); an empty
    // app_socket_dir means the manager's %t/ondemand/apps (default_app_socket_dir).
    std::string apps_dir;
    std::string app_socket_dir;
    std::string config_path;
    bool check_config = false;

    // Which settings the command line gave (they override the config file).
    struct given_flags {
        bool socket = false;
        bool bus = false;
        bool allow_units = false;
        bool allow_uids = false;
        bool allow_gids = false;
        bool socket_mode = false;
        bool level = false;
        bool max_connections = false;
        bool max_connections_per_uid = false;
        bool max_apps = false;
        bool line_timeout_ms = false;
        bool max_waits_per_client = false;
        bool key_file = false;
        bool stop_timeout_ms = false;
        bool apps_dir = false;
        bool app_socket_dir = false;
    } given;
};

// The settings in force: defaults, then the config file, then the flags given.
options merge_config(const options& command_line, const config_values& file);

// Parses argv. Returns the options, or an exit code when parsing ended the run (--help, errors;
// the message is printed).
struct parsed_options {
    std::optional<options> opts;
    int exit_code = 0;
};
parsed_options parse_command_line(int argc, char** argv);

} // namespace ondemand::helperd

#endif
