#include "app_file.h"

#include "ondemand_protocol.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace ondemand::ctl {

namespace {

constexpr std::string_view known_keys[] = {
    "KIND",  "IMAGE", "CMD",           "ARGS",         "PULL",  "EXEC",
    "HOSTS", "READY", "START_TIMEOUT", "IDLE_TIMEOUT", "QUEUE", "FAILED_STATUS",
};

bool is_known_key(std::string_view k) {
    return std::find(std::begin(known_keys), std::end(known_keys), k) != std::end(known_keys);
}

bool valid_env_name(std::string_view k) {
    if (k.empty() || (k[0] >= '0' && k[0] <= '9')) {
        return false;
    }
    return std::all_of(k.begin(), k.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_container(app_kind k) {
    return k != app_kind::exec;
}

} // namespace

std::string diagnostic::to_string() const {
    std::string out = file;
    if (line != 0) {
        out += ":" + std::to_string(line);
    }
    out += ": ";
    if (!key.empty()) {
        out += key + ": ";
    }
    return out + message;
}

std::string_view kind_name(app_kind k) {
    switch (k) {
    case app_kind::podman:
        return "podman";
    case app_kind::podman_simple:
        return "podman-simple";
    case app_kind::podman_systemd:
        return "podman-systemd";
    case app_kind::docker:
        return "docker";
    case app_kind::exec:
        return "exec";
    }
    return "podman";
}

std::optional<app_kind> parse_kind(std::string_view name) {
    for (app_kind k : {app_kind::podman, app_kind::podman_simple, app_kind::podman_systemd,
                       app_kind::docker, app_kind::exec}) {
        if (kind_name(k) == name) {
            return k;
        }
    }
    return std::nullopt;
}

std::string unit_template(app_kind k) {
    return "ondemand-" + std::string(kind_name(k));
}

std::string app_config::unit() const {
    return unit_template(kind) + "@" + name + ".service";
}

bool valid_nginx_time(std::string_view t) {
    if (t.empty()) {
        return false;
    }
    if (std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return t.size() <= 9;
    }
    std::size_t i = 0;
    while (i < t.size()) {
        std::size_t digits = 0;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
            ++i;
            ++digits;
        }
        if (digits == 0 || digits > 9 || i == t.size()) {
            return false;
        }
        if (t.compare(i, 2, "ms") == 0) {
            i += 2;
        } else if (std::string_view("smhdwMy").find(t[i]) != std::string_view::npos) {
            ++i;
        } else {
            return false;
        }
    }
    return true;
}

std::optional<std::uint64_t> nginx_time_ms(std::string_view t) {
    if (!valid_nginx_time(t)) {
        return std::nullopt;
    }
    constexpr std::uint64_t max = UINT64_MAX;
    auto mul = [](std::uint64_t a, std::uint64_t b) { return b != 0 && a > max / b ? max : a * b; };
    auto add = [](std::uint64_t a, std::uint64_t b) { return a > max - b ? max : a + b; };
    std::uint64_t total = 0;
    std::size_t i = 0;
    while (i < t.size()) {
        std::uint64_t value = 0;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
            value = value * 10 + static_cast<std::uint64_t>(t[i] - '0'); // at most 9 digits
            ++i;
        }
        std::uint64_t scale = 1000; // a trailing number without a unit: seconds
        if (i < t.size()) {
            if (t.compare(i, 2, "ms") == 0) {
                scale = 1;
                i += 2;
            } else {
                switch (t[i]) {
                case 'y':
                    scale = 365ULL * 24 * 3600 * 1000;
                    break;
                case 'M':
                    scale = 30ULL * 24 * 3600 * 1000;
                    break;
                case 'w':
                    scale = 7ULL * 24 * 3600 * 1000;
                    break;
                case 'd':
                    scale = 24ULL * 3600 * 1000;
                    break;
                case 'h':
                    scale = 3600ULL * 1000;
                    break;
                case 'm':
                    scale = 60ULL * 1000;
                    break;
                default: // 's'
                    break;
                }
                ++i;
            }
        }
        total = add(total, mul(value, scale));
    }
    return total;
}

bool valid_host_name(std::string_view h) {
    if (h.starts_with("*.")) {
        h.remove_prefix(2);
    } else if (h.starts_with(".")) {
        h.remove_prefix(1);
    }
    if (h.empty() || h.size() > 253 || h.back() == '.') {
        return false;
    }
    std::size_t label = 0;
    for (char c : h) {
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            continue;
        }
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || ++label > 63) {
            return false;
        }
    }
    return true;
}

parse_result parse_app_file(const std::string& path, std::string_view text) {
    parse_result res;
    auto error = [&](unsigned line, std::string key, std::string msg) {
        res.errors.push_back({path, line, std::move(key), std::move(msg)});
    };

    std::string name = std::filesystem::path(path).filename().string();
    if (!name.ends_with(".conf")) {
        error(0, "", "an app file's name must end in .conf");
        return res;
    }
    name.resize(name.size() - 5);
    if (!proto::valid_app_name(name)) {
        error(0, "",
              "\"" + name +
                  "\" is not a valid app name (1-64 of A-Z a-z 0-9 _ . -, not "
                  "starting with . or -)");
        return res;
    }

    app_config app;
    app.name = name;
    app.file = path;
    std::map<std::string, unsigned, std::less<>> line_of; // key -> line where it was set
    std::map<std::string, std::string, std::less<>> values;

    unsigned lineno = 0;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t nl = text.find('\n', pos);
        std::string_view raw =
            text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
        ++lineno;
        std::string_view line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') {
            continue;
        }
        if (line.back() == '\\') {
            error(lineno, "",
                  "line continuations (a trailing \\) are not supported: put the "
                  "value on one line");
            continue;
        }
        std::size_t eq = line.find('=');
        if (eq == std::string_view::npos) {
            error(lineno, "", "expected KEY=VALUE");
            continue;
        }
        std::string key(trim(line.substr(0, eq)));
        std::string_view value = trim(line.substr(eq + 1));
        if (!valid_env_name(key)) {
            error(lineno, key, "not a valid variable name (letters, digits and _)");
            continue;
        }
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front()) {
            value = value.substr(1, value.size() - 2);
        } else if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
            error(lineno, key, "unterminated quote");
            continue;
        }
        if (std::any_of(value.begin(), value.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 && c != '\t'; })) {
            error(lineno, key, "control characters are not allowed");
            continue;
        }
        if (auto it = line_of.find(key); it != line_of.end()) {
            error(lineno, key, "set twice (first on line " + std::to_string(it->second) + ")");
            continue;
        }
        line_of[key] = lineno;
        values[key] = std::string(value);
    }

    auto get = [&](std::string_view key) -> const std::string* {
        auto it = values.find(key);
        return it == values.end() ? nullptr : &it->second;
    };
    auto at = [&](std::string_view key) -> unsigned {
        auto it = line_of.find(key);
        return it == line_of.end() ? 0 : it->second;
    };

    // KIND: explicit, or podman when IMAGE is set, exec when EXEC is set.
    if (const std::string* k = get("KIND")) {
        if (auto kind = parse_kind(*k)) {
            app.kind = *kind;
        } else {
            error(at("KIND"), "KIND",
                  "\"" + *k +
                      "\" is not one of podman, podman-simple, podman-systemd, docker, exec");
        }
    } else if (get("EXEC") != nullptr && get("IMAGE") == nullptr) {
        app.kind = app_kind::exec;
    }

    if (is_container(app.kind)) {
        if (const std::string* v = get("IMAGE"); v == nullptr || v->empty()) {
            error(at("IMAGE"), "IMAGE",
                  std::string("required for KIND=") + std::string(kind_name(app.kind)));
        } else if (v->find_first_of(" \t") != std::string::npos) {
            error(at("IMAGE"), "IMAGE", "an image name has no spaces");
        } else {
            app.image = *v;
        }
        if (get("EXEC") != nullptr) {
            error(at("EXEC"), "EXEC", "only for KIND=exec; a container's command is CMD");
        }
        if (const std::string* v = get("PULL")) {
            if (*v != "never" && *v != "missing" && *v != "always" && *v != "newer") {
                error(at("PULL"), "PULL",
                      "\"" + *v + "\" is not one of never, missing, always, newer");
            }
            app.pull = *v;
        }
        for (const auto& [key, line] : line_of) {
            if (!is_known_key(key)) {
                error(line, key,
                      "unknown key (known: KIND IMAGE CMD ARGS PULL HOSTS READY "
                      "START_TIMEOUT IDLE_TIMEOUT QUEUE FAILED_STATUS)");
            }
        }
    } else {
        if (const std::string* v = get("EXEC"); v == nullptr || v->empty()) {
            error(at("EXEC"), "EXEC", "required for KIND=exec");
        } else {
            app.exec = *v;
        }
        for (std::string_view key : {"IMAGE", "CMD", "ARGS", "PULL"}) {
            if (get(key) != nullptr) {
                error(at(key), std::string(key), "only for container kinds, not KIND=exec");
            }
        }
        // Other variables are the process's environment (the unit's EnvironmentFile=).
    }
    if (const std::string* v = get("CMD")) {
        app.cmd = *v;
    }
    if (const std::string* v = get("ARGS")) {
        app.args = *v;
    }

    if (const std::string* v = get("HOSTS")) {
        std::istringstream in(*v);
        std::string h;
        while (in >> h) {
            if (!valid_host_name(h)) {
                error(at("HOSTS"), "HOSTS", "\"" + h + "\" is not a valid host name");
            } else if (h == "default" || h == "include" || h == "hostnames" || h == "volatile") {
                // `default APP;` in gen-nginx's map would route every unknown host to the app,
                // `include APP;` read a file (found by tests/fuzz/fuzz_app_file.cpp)
                error(at("HOSTS"), "HOSTS",
                      "\"" + h + "\" is a keyword of nginx's map, not a host name");
            } else {
                app.hosts.push_back(h);
            }
        }
    }
    if (const std::string* v = get("READY")) {
        if (!proto::valid_ready_mode(*v)) {
            error(at("READY"), "READY", "\"" + *v + "\" is not connect, notify or http:/path");
        } else if (*v == "notify" && app.kind != app_kind::podman &&
                   app.kind != app_kind::podman_systemd) {
            error(at("READY"), "READY",
                  std::string("notify needs a Type=notify unit (KIND=podman or podman-systemd), "
                              "not KIND=") +
                      std::string(kind_name(app.kind)));
        } else {
            app.ready = *v;
        }
    }
    for (auto [key, field] : {std::pair{"START_TIMEOUT", &app.start_timeout},
                              std::pair{"IDLE_TIMEOUT", &app.idle_timeout}}) {
        if (const std::string* v = get(key)) {
            if (!valid_nginx_time(*v)) {
                error(at(key), key, "\"" + *v + "\" is not a time (e.g. 500ms, 30s, 5m, 1h)");
            } else {
                *field = *v;
            }
        }
    }
    if (const std::string* v = get("QUEUE")) {
        bool digits =
            !v->empty() && v->size() <= 9 &&
            std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits || *v == "0" || v->front() == '0') {
            error(at("QUEUE"), "QUEUE", "\"" + *v + "\" is not a positive number");
        } else {
            app.queue = *v;
        }
    }
    if (const std::string* v = get("FAILED_STATUS")) {
        if (*v != "502" && *v != "503") {
            error(at("FAILED_STATUS"), "FAILED_STATUS", "must be 502 or 503");
        } else {
            app.failed_status = *v;
        }
    }
    if (!proto::valid_unit_name(app.unit())) {
        error(0, "", "\"" + app.unit() + "\" is not a valid unit name");
    }

    app.hosts_line = at("HOSTS");
    std::stable_sort(res.errors.begin(), res.errors.end(),
                     [](const diagnostic& a, const diagnostic& b) { return a.line < b.line; });
    if (res.errors.empty()) {
        res.app = std::move(app);
    }
    return res;
}

dir_result load_apps_dir(const std::filesystem::path& dir) {
    dir_result res;
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().extension() == ".conf") {
            files.push_back(it->path());
        }
    }
    if (ec) {
        res.errors.push_back({dir.string(), 0, "", ec.message()});
        return res;
    }
    std::sort(files.begin(), files.end());
    std::map<std::string, std::string> host_owner; // host -> file
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        if (!in) {
            res.errors.push_back({f.string(), 0, "", "cannot read the file"});
            continue;
        }
        std::stringstream buf;
        buf << in.rdbuf();
        parse_result r = parse_app_file(f.string(), buf.str());
        res.errors.insert(res.errors.end(), r.errors.begin(), r.errors.end());
        if (!r.app) {
            continue;
        }
        bool ok = true;
        for (const std::string& h : r.app->hosts) {
            auto [it, inserted] = host_owner.emplace(h, f.string());
            if (!inserted) {
                res.errors.push_back({f.string(), r.app->hosts_line, "HOSTS",
                                      "host \"" + h + "\" is already claimed by " + it->second});
                ok = false;
            }
        }
        if (ok) {
            res.apps.push_back(std::move(*r.app));
        }
    }
    return res;
}

} // namespace ondemand::ctl
