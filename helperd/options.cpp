// options: helperd's command line (CLI11) and its merge with the config file (see options.h).
// May use config (the file's values, the value parsers); config must not include this file.
#include "options.h"

#include "ondemand_version.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <stdexcept>

namespace ondemand::helperd {

parsed_options parse_command_line(int argc, char** argv) {
    options o;
    CLI::App app{"ondemand-helperd: starts and stops ondemand's app units for nginx, through "
                 "systemd"};
    app.set_version_flag("--version", std::string("ondemand-helperd " ONDEMAND_VERSION));
    auto* socket =
        app.add_option("--socket", o.socket,
                       "unix socket to listen on (unless systemd passes one: socket activation)");
    bool use_user = false;
    bool use_system = false;
    bool use_p2p = false;
    auto* user = app.add_flag("--user", use_user, "talk to the user's service manager (user bus)");
    auto* system = app.add_flag("--system", use_system, "talk to the system manager (default)");
    std::string bus_address;
    auto* bus = app.add_option("--bus", bus_address, "talk to systemd at this D-Bus address");
    auto* p2p = app.add_flag("--peer-to-peer", use_p2p,
                             "the --bus address is a manager's private socket (no message bus)");
    p2p->needs(bus);
    user->excludes(system)->excludes(bus);
    system->excludes(bus);
    auto* allow_units =
        app.add_option("--allow-unit", o.allow_units,
                       "glob of units helperd may start and stop (repeatable; default "
                       "ondemand-*.service)");
    std::vector<std::string> uids;
    std::vector<std::string> gids;
    auto* allow_uids =
        app.add_option("--allow-uid", uids,
                       "peer uid (or user name) allowed to connect (repeatable; default: anyone "
                       "who can open the socket)");
    auto* allow_gids = app.add_option("--allow-gid", gids,
                                      "peer gid (or group name) allowed to connect (repeatable)");
    std::string mode = "0660";
    auto* socket_mode =
        app.add_option("--socket-mode", mode, "file mode of the socket helperd binds")
            ->capture_default_str();
    std::string level = "info";
    auto* log_level_flag = app.add_option("--log-level", level, "debug, info, warning or error")
                               ->capture_default_str()
                               ->check(CLI::IsMember({"debug", "info", "warning", "error"}));
    const auto limit = CLI::Range(std::size_t{1}, std::size_t{2147483647});
    auto* max_connections = app.add_option("--max-connections", o.max_connections,
                                           "connections served at once; more are refused")
                                ->capture_default_str()
                                ->check(limit);
    auto* max_connections_per_uid =
        app.add_option("--max-connections-per-uid", o.max_connections_per_uid,
                       "connections served at once from one peer uid")
            ->capture_default_str()
            ->check(limit);
    auto* max_apps =
        app.add_option("--max-apps", o.max_apps, "app records kept; idle ones are dropped first")
            ->capture_default_str()
            ->check(limit);
    auto* line_timeout_ms =
        app.add_option("--line-timeout-ms", o.line_timeout_ms,
                       "close a connection whose line stays incomplete this long")
            ->capture_default_str()
            ->check(limit);
    auto* max_waits_per_client =
        app.add_option("--max-waits-per-client", o.max_waits_per_client,
                       "requests one connection may have awaiting an answer at once")
            ->capture_default_str()
            ->check(limit);
    auto* key_file = app.add_option(
        "--key-file", o.key_file,
        "file with the key clients must send in HELLO (read at start and on SIGHUP)");
    auto* stop_timeout_ms =
        app.add_option("--stop-timeout-ms", o.stop_timeout_ms,
                       "a stop not finished this long after StopUnit fails (stop-failed)")
            ->capture_default_str()
            ->check(limit);
    const auto absolute = CLI::Validator(
        [](std::string& path) {
            return !path.empty() && path[0] == '/' ? std::string() : "must be an absolute path";
        },
        "PATH");
    auto* apps_dir = app.add_option("--apps-dir", o.apps_dir,
                                    "the app files (NAME.conf) of the apps helperd serves; "
                                    "without it helperd trusts its clients")
                         ->check(absolute);
    auto* app_socket_dir =
        app.add_option("--app-socket-dir", o.app_socket_dir,
                       "the apps' socket directory (default %t/ondemand/apps: /run/ondemand/apps, "
                       "or $XDG_RUNTIME_DIR/ondemand/apps with --user)")
            ->check(absolute);
    app.add_option("--config", o.config_path, "TOML config file (flags override it)");
    app.add_flag("--check-config", o.check_config,
                 "check the config file and the flags, report every problem, and exit");
    try {
        app.parse(argc, argv);
        for (const std::string& u : uids) {
            o.allow_uids.push_back(parse_uid(u));
        }
        for (const std::string& g : gids) {
            o.allow_gids.push_back(parse_gid(g));
        }
        o.socket_mode = parse_mode(mode);
        o.level = *parse_log_level(level);
    } catch (const CLI::ParseError& e) {
        return {std::nullopt, app.exit(e)};
    } catch (const std::invalid_argument& e) {
        fmt::print(stderr, "ondemand-helperd: {}\n", e.what());
        return {std::nullopt, 2};
    }
    o.given.socket = socket->count() > 0;
    o.given.bus = use_user || use_system || bus->count() > 0;
    o.given.allow_units = allow_units->count() > 0;
    o.given.allow_uids = allow_uids->count() > 0;
    o.given.allow_gids = allow_gids->count() > 0;
    o.given.socket_mode = socket_mode->count() > 0;
    o.given.level = log_level_flag->count() > 0;
    o.given.max_connections = max_connections->count() > 0;
    o.given.max_connections_per_uid = max_connections_per_uid->count() > 0;
    o.given.max_apps = max_apps->count() > 0;
    o.given.line_timeout_ms = line_timeout_ms->count() > 0;
    o.given.max_waits_per_client = max_waits_per_client->count() > 0;
    o.given.key_file = key_file->count() > 0;
    o.given.stop_timeout_ms = stop_timeout_ms->count() > 0;
    o.given.apps_dir = apps_dir->count() > 0;
    o.given.app_socket_dir = app_socket_dir->count() > 0;
    if (use_user) {
        o.bus.type = bus_address::kind::user;
    } else if (*bus) {
        o.bus.type = bus_address::kind::address;
        o.bus.address = bus_address;
        o.bus.peer_to_peer = use_p2p;
    } else {
        o.bus.type = bus_address::kind::system;
    }
    return {std::move(o), 0};
}

namespace {

// The file's value, unless the command line gave the setting.
template <class T> void take_from_file(bool given, const std::optional<T>& file_value, T& setting) {
    if (!given && file_value) {
        setting = *file_value;
    }
}

} // namespace

options merge_config(const options& command_line, const config_values& file) {
    options o = command_line;
    const options::given_flags& given = command_line.given;
    take_from_file(given.socket, file.socket, o.socket);
    take_from_file(given.bus, file.bus, o.bus);
    take_from_file(given.allow_units, file.allow_units, o.allow_units);
    take_from_file(given.allow_uids, file.allow_uids, o.allow_uids);
    take_from_file(given.allow_gids, file.allow_gids, o.allow_gids);
    take_from_file(given.socket_mode, file.socket_mode, o.socket_mode);
    take_from_file(given.level, file.level, o.level);
    take_from_file(given.max_connections, file.max_connections, o.max_connections);
    take_from_file(given.max_connections_per_uid, file.max_connections_per_uid,
                   o.max_connections_per_uid);
    take_from_file(given.max_apps, file.max_apps, o.max_apps);
    take_from_file(given.line_timeout_ms, file.line_timeout_ms, o.line_timeout_ms);
    take_from_file(given.max_waits_per_client, file.max_waits_per_client, o.max_waits_per_client);
    take_from_file(given.key_file, file.key_file, o.key_file);
    take_from_file(given.stop_timeout_ms, file.stop_timeout_ms, o.stop_timeout_ms);
    take_from_file(given.apps_dir, file.apps_dir, o.apps_dir);
    take_from_file(given.app_socket_dir, file.app_socket_dir, o.app_socket_dir);
    return o;
}

} // namespace ondemand::helperd
