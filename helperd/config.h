// config: helperd's TOML config file (--config), the same settings as the flags, and the
// value parsers both use (uid, gid, file mode). Flags given on the command line override the
// file (options.h); SIGHUP re-reads it. See docs/helperd.md for the keys.
// Must not include options.h (options builds on this file) nor the daemon's parts.
#ifndef ONDEMAND_HELPERD_CONFIG_H
#define ONDEMAND_HELPERD_CONFIG_H

#include "log.h"
#include "sdbus.h"

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::helperd {

// What a config file sets; a key it leaves out stays unset.
struct config_values {
    std::optional<std::string> socket;
    std::optional<bus_address> bus;
    std::optional<std::vector<std::string>> allow_units;
    std::optional<std::vector<uid_t>> allow_uids;
    std::optional<std::vector<gid_t>> allow_gids;
    std::optional<mode_t> socket_mode;
    std::optional<log_level> level;
    // Limits (docs/helperd.md, "Limits"): positive integers.
    std::optional<std::size_t> max_connections;
    std::optional<std::size_t> max_connections_per_uid;
    std::optional<std::size_t> max_apps;
    std::optional<std::size_t> line_timeout_ms;
    std::optional<std::size_t> max_waits_per_client;
    // The file holding the key clients must send in HELLO ("": none).
    std::optional<std::string> key_file;
    std::optional<std::size_t> stop_timeout_ms;
    // The app registry (docs/helperd.md, "App registry"): absolute paths.
    std::optional<std::string> apps_dir;
    std::optional<std::string> app_socket_dir;
};

struct config_result {
    config_values values;
    // One message per problem, each naming its key (and line): "socket_mode (line 3): ...".
    std::vector<std::string> errors;
    bool ok() const { return errors.empty(); }
};

// "1000" or a user name; throws std::invalid_argument.
uid_t parse_uid(const std::string& text);
// "1000" or a group name; throws std::invalid_argument.
gid_t parse_gid(const std::string& text);
// Octal file mode such as "0660"; throws std::invalid_argument.
mode_t parse_mode(const std::string& text);

config_result parse_config(std::string_view text, std::string_view source_name);
config_result load_config(const std::string& path);

} // namespace ondemand::helperd

#endif
