// config: reads helperd's TOML config file and parses uids, gids and modes (see config.h).
// Must not include options.h.
#include "config.h"

#include "ondemand_protocol.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <grp.h>
#include <pwd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ondemand::helperd {

namespace {

bool parse_number(const std::string& text, unsigned long& out, int base = 10) {
    if (text.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
    return ec == std::errc{} && p == text.data() + text.size();
}

} // namespace

namespace {

// A number below Id's -1, or a name `lookup` knows; else std::invalid_argument naming `what`.
template <class Id, class Lookup>
Id parse_id(const std::string& text, Lookup lookup, std::string_view what) {
    unsigned long n = 0;
    if (parse_number(text, n) && n < static_cast<unsigned long>(static_cast<Id>(-1))) {
        return static_cast<Id>(n);
    }
    if (std::optional<Id> id = lookup(text.c_str())) {
        return *id;
    }
    throw std::invalid_argument(fmt::format("not a {}: {}", what, text));
}

} // namespace

uid_t parse_uid(const std::string& text) {
    return parse_id<uid_t>(
        text,
        [](const char* name) -> std::optional<uid_t> {
            const passwd* pw = getpwnam(name);
            return pw != nullptr ? std::optional<uid_t>(pw->pw_uid) : std::nullopt;
        },
        "uid or user name");
}

gid_t parse_gid(const std::string& text) {
    return parse_id<gid_t>(
        text,
        [](const char* name) -> std::optional<gid_t> {
            const group* gr = getgrnam(name);
            return gr != nullptr ? std::optional<gid_t>(gr->gr_gid) : std::nullopt;
        },
        "gid or group name");
}

mode_t parse_mode(const std::string& text) {
    unsigned long n = 0;
    if (!parse_number(text, n, 8) || n > 0777) {
        throw std::invalid_argument(fmt::format("not an octal file mode (0000-0777): {}", text));
    }
    return static_cast<mode_t>(n);
}

namespace {

class config_reader {
  public:
    config_reader(config_result& out, std::string_view source) : out_(out), source_(source) {}

    void read(const toml::table& table) {
        for (const auto& [key, node] : table) {
            std::string name(key.str());
            // "FILE:LINE: KEY", as ondemandctl's diagnostics
            std::string where = fmt::format("{}:{}: {}", source_, node.source().begin.line, name);
            try {
                read_key(name, node, where);
            } catch (const std::invalid_argument& e) {
                error(where, e.what());
            }
        }
        if (peer_to_peer_ &&
            (!out_.values.bus || out_.values.bus->type != bus_address::kind::address)) {
            error(fmt::format("{}: peer_to_peer", source_), "needs bus set to a D-Bus address");
        } else if (peer_to_peer_) {
            out_.values.bus->peer_to_peer = true;
        }
    }

  private:
    void error(const std::string& where, std::string_view what) {
        out_.errors.push_back(fmt::format("{}: {}", where, what));
    }

    static std::string string_of(const toml::node& node, std::string_view what) {
        if (auto s = node.value<std::string>()) {
            return *s;
        }
        throw std::invalid_argument(fmt::format("must be a string ({})", what));
    }

    // A uid/gid list entry: an integer or a name.
    template <typename Parse> static auto id_of(const toml::node& node, Parse parse) {
        if (auto n = node.value<std::int64_t>()) {
            if (*n < 0) {
                throw std::invalid_argument(fmt::format("negative id {}", *n));
            }
            return parse(std::to_string(*n));
        }
        if (auto s = node.value<std::string>()) {
            return parse(*s);
        }
        throw std::invalid_argument("entries must be numbers or names");
    }

    // A limit: an integer from 1 to 2^31-1.
    static std::size_t positive_of(const toml::node& node) {
        auto n = node.value<std::int64_t>();
        if (!n || *n < 1 || *n > 2147483647) {
            throw std::invalid_argument("must be an integer from 1 to 2147483647");
        }
        return static_cast<std::size_t>(*n);
    }

    static const toml::array& array_of(const toml::node& node) {
        const toml::array* a = node.as_array();
        if (a == nullptr) {
            throw std::invalid_argument("must be an array");
        }
        return *a;
    }

    void read_key(const std::string& name, const toml::node& node, const std::string& where) {
        config_values& v = out_.values;
        if (name == "socket") {
            std::string path = string_of(node, "a path");
            if (!path.empty() && (path[0] != '/' || path.size() > proto::max_socket_path_length)) {
                throw std::invalid_argument("must be an absolute path of at most 107 bytes");
            }
            v.socket = path;
        } else if (name == "bus") {
            std::string bus = string_of(node, R"("system", "user" or a D-Bus address)");
            bus_address a;
            if (bus == "system") {
                a.type = bus_address::kind::system;
            } else if (bus == "user") {
                a.type = bus_address::kind::user;
            } else if (bus.find(':') != std::string::npos) {
                a.type = bus_address::kind::address;
                a.address = bus;
            } else {
                throw std::invalid_argument(
                    R"(must be "system", "user" or a D-Bus address such as "unix:path=...")");
            }
            v.bus = a;
        } else if (name == "peer_to_peer") {
            auto b = node.value<bool>();
            if (!b) {
                throw std::invalid_argument("must be true or false");
            }
            peer_to_peer_ = *b;
        } else if (name == "allow_units") {
            std::vector<std::string> globs;
            for (const toml::node& entry : array_of(node)) {
                std::string glob = string_of(entry, "a unit glob");
                if (glob.empty()) {
                    throw std::invalid_argument("empty glob");
                }
                globs.push_back(glob);
            }
            v.allow_units = globs;
        } else if (name == "allow_uids") {
            std::vector<uid_t> ids;
            for (const toml::node& entry : array_of(node)) {
                ids.push_back(id_of(entry, parse_uid));
            }
            v.allow_uids = ids;
        } else if (name == "allow_gids") {
            std::vector<gid_t> ids;
            for (const toml::node& entry : array_of(node)) {
                ids.push_back(id_of(entry, parse_gid));
            }
            v.allow_gids = ids;
        } else if (name == "socket_mode") {
            v.socket_mode = parse_mode(string_of(node, R"(an octal mode such as "0660")"));
        } else if (name == "max_connections") {
            v.max_connections = positive_of(node);
        } else if (name == "max_connections_per_uid") {
            v.max_connections_per_uid = positive_of(node);
        } else if (name == "max_apps") {
            v.max_apps = positive_of(node);
        } else if (name == "line_timeout_ms") {
            v.line_timeout_ms = positive_of(node);
        } else if (name == "max_waits_per_client") {
            v.max_waits_per_client = positive_of(node);
        } else if (name == "key_file") {
            std::string path = string_of(node, "a path");
            if (!path.empty() && path[0] != '/') {
                throw std::invalid_argument("must be an absolute path");
            }
            v.key_file = path;
        } else if (name == "stop_timeout_ms") {
            v.stop_timeout_ms = positive_of(node);
        } else if (name == "apps_dir" || name == "app_socket_dir") {
            std::string path = string_of(node, "an absolute path");
            if (path.empty() || path[0] != '/') {
                throw std::invalid_argument("must be an absolute path");
            }
            (name == "apps_dir" ? v.apps_dir : v.app_socket_dir) = path;
        } else if (name == "log_level") {
            std::string level = string_of(node, "debug, info, warning or error");
            v.level = parse_log_level(level);
            if (!v.level) {
                throw std::invalid_argument(
                    fmt::format("unknown level {} (debug, info, warning or error)", level));
            }
        } else {
            error(where, "unknown key");
        }
    }

    config_result& out_;
    std::string_view source_;
    bool peer_to_peer_ = false;
};

} // namespace

config_result parse_config(std::string_view text, std::string_view source_name) {
    config_result out;
    toml::table table;
    try {
        table = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        out.errors.push_back(
            fmt::format("{}:{}: {}", source_name, e.source().begin.line, e.description()));
        return out;
    }
    config_reader(out, source_name).read(table);
    return out;
}

config_result load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        config_result out;
        out.errors.push_back(fmt::format("{}: cannot read the file", path));
        return out;
    }
    std::stringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path);
}

} // namespace ondemand::helperd
