// registry: the apps helperd knows from their app files, and the checks of requests against
// them (see registry.h). The app files are parsed by ctl/app_file.cpp, ondemandctl's parser.
#include "registry.h"

#include "app_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

namespace ondemand::helperd {

app_registry::app_registry(std::vector<registered_app> apps) {
    for (registered_app& a : apps) {
        std::string name = a.name;
        apps_.insert_or_assign(std::move(name), std::move(a));
    }
}

const registered_app* app_registry::find(std::string_view name) const {
    auto it = apps_.find(name);
    return it == apps_.end() ? nullptr : &it->second;
}

std::optional<std::string> app_registry::refusal(const proto::message& m) const {
    if (!proto::names_app(m.kind)) {
        return std::nullopt;
    }
    const registered_app* a = find(m.app);
    if (a == nullptr) {
        return fmt::format("unknown app {}", m.app);
    }
    auto differs = [&](std::string_view field, const std::string& ours, std::string_view theirs) {
        return fmt::format("{} disagrees with {}: {} {} ({} has {})", proto::verb_name(m.kind),
                           a->file, field, ours, proto::verb_name(m.kind), theirs);
    };
    if (m.kind == proto::verb::start || m.kind == proto::verb::stop ||
        m.kind == proto::verb::freeze) {
        if (m.unit != a->unit) {
            return differs("unit", a->unit, m.unit);
        }
    }
    if (m.kind == proto::verb::start) {
        if (m.socket != a->socket) {
            return differs("socket", a->socket, m.socket);
        }
        if (m.ready != a->ready) {
            return differs("ready", a->ready, m.ready);
        }
    }
    return std::nullopt;
}

registry_load load_registry(const std::filesystem::path& apps_dir, const std::string& socket_dir) {
    registry_load out;
    std::error_code ec;
    if (!std::filesystem::is_directory(apps_dir, ec)) {
        out.problems.push_back(
            fmt::format("{}: not a directory{}: no app is served", apps_dir.string(),
                        ec ? fmt::format(" ({})", ec.message()) : std::string()));
        return out;
    }
    ctl::dir_result dir = ctl::load_apps_dir(apps_dir);
    out.read = true;
    for (const ctl::diagnostic& d : dir.errors) {
        if (d.is_error()) { // a warning (no HOSTS) is nginx's business, not helperd's
            out.problems.push_back(d.to_string());
        }
    }
    std::vector<registered_app> apps;
    apps.reserve(dir.apps.size());
    for (const ctl::app_config& c : dir.apps) {
        registered_app a;
        a.name = c.name;
        a.file = c.file;
        a.unit = c.unit();
        a.socket = socket_dir + "/" + c.name + "/app.sock";
        a.ready = c.ready;
        a.start_timeout = app_registry::default_start_timeout;
        if (!c.start_timeout.empty()) {
            // A valid time (the parser checked it); the protocol's range, as the codec's.
            std::uint64_t ms = ctl::nginx_time_ms(c.start_timeout).value_or(0);
            ms = std::clamp<std::uint64_t>(ms, 1, proto::max_timeout_ms);
            a.start_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(ms));
        }
        if (a.socket.size() > proto::max_socket_path_length) {
            out.problems.push_back(fmt::format("{}: the app's socket {} is longer than {} bytes",
                                               c.file, a.socket, proto::max_socket_path_length));
            continue;
        }
        apps.push_back(std::move(a));
    }
    out.registry = app_registry(std::move(apps));
    return out;
}

std::string default_app_socket_dir(bool user) {
    if (user) {
        if (const char* runtime = std::getenv("XDG_RUNTIME_DIR");
            runtime != nullptr && runtime[0] == '/') {
            return std::string(runtime) + "/ondemand/apps";
        }
    }
    return "/run/ondemand/apps";
}

} // namespace ondemand::helperd
