// helperd's settings: command-line flags (CLI11) and, priority below them, a TOML config file.
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

// "1000" or a user name; throws std::invalid_argument.
uid_t parse_uid(const std::string& text);
// "1000" or a group name; throws std::invalid_argument.
gid_t parse_gid(const std::string& text);
// Octal file mode such as "0660"; throws std::invalid_argument.
mode_t parse_mode(const std::string& text);

} // namespace ondemand::helperd

#endif
