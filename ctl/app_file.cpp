#include "app_file.h"

#include "app_tenancy.h"
#include "env_file.h"
#include "ondemand_protocol.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace ondemand::ctl {

namespace {

constexpr std::string_view known_keys[] = {
    "KIND",  "IMAGE",   "CMD",           "ARGS",         "PULL",    "EXEC",
    "HOSTS", "READY",   "START_TIMEOUT", "IDLE_TIMEOUT", "QUEUE",   "FAILED_STATUS",
    "USER",  "WORKDIR", "MEMORY_MAX",    "CPU_WEIGHT",   "NETWORK",
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

bool is_container(app_kind k) {
    return k != app_kind::exec;
}

// Levenshtein distance, for "did you mean ...?".
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// The known key nearest to `key`, within an edit distance of 2 (and of a third of the known
// key's length when `strict`); empty when there is none.
std::string_view nearest_key(std::string_view key, bool strict) {
    std::string_view best;
    std::size_t best_d = 3;
    for (std::string_view k : known_keys) {
        std::size_t d = edit_distance(key, k);
        if (d < best_d && (!strict || 3 * d <= k.size())) {
            best = k;
            best_d = d;
        }
    }
    return best;
}

// READY=http:PATH: a URL path (and query) of RFC 3986 characters, `;` left out (nginx would
// end the directive there): A-Z a-z 0-9 - . _ ~ / ! $ & ' ( ) * + , = : @ ? and %HH.
bool valid_url_path(std::string_view p) {
    auto hex = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    };
    for (std::size_t i = 0; i < p.size(); ++i) {
        char c = p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            std::string_view("-._~/!$&'()*+,=:@?").find(c) != std::string_view::npos) {
            continue;
        }
        if (c == '%' && i + 2 < p.size() && hex(p[i + 1]) && hex(p[i + 2])) {
            i += 2;
            continue;
        }
        return false;
    }
    return true;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
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
    if (level == severity::warning) {
        out += "warning: ";
    }
    return out + message;
}

std::size_t count_errors(const std::vector<diagnostic>& ds) {
    return static_cast<std::size_t>(
        std::count_if(ds.begin(), ds.end(), [](const diagnostic& d) { return d.is_error(); }));
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
    case app_kind::oci:
        return "oci";
    }
    return "podman";
}

std::optional<app_kind> parse_kind(std::string_view name) {
    for (app_kind k : {app_kind::podman, app_kind::podman_simple, app_kind::podman_systemd,
                       app_kind::docker, app_kind::exec, app_kind::oci}) {
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
    // As nginx's ngx_parse_time(): numbers with units y M w d h m s ms, each unit at most once
    // and in that order ("30s1m", "1s1s" are refused); a last number without a unit is seconds
    // ("1m30" is 90 s). Stricter: at most 9 digits a number, no spaces.
    if (t.empty()) {
        return false;
    }
    constexpr std::string_view order[] = {"y", "M", "w", "d", "h", "m", "s", "ms"};
    std::size_t next = 0; // the first unit still allowed
    std::size_t i = 0;
    while (i < t.size()) {
        std::size_t digits = 0;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
            ++i;
            ++digits;
        }
        if (digits == 0 || digits > 9) {
            return false;
        }
        if (i == t.size()) {
            return true; // a trailing number: seconds
        }
        std::size_t unit = 0;
        if (t.compare(i, 2, "ms") == 0) {
            unit = 7;
        } else {
            unit =
                std::find(std::begin(order), std::end(order), t.substr(i, 1)) - std::begin(order);
            if (unit == std::size(order)) {
                return false;
            }
        }
        if (unit < next) {
            return false;
        }
        next = unit + 1;
        i += order[unit].size();
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

    for (env_entry& e : read_env_file(text)) {
        if (!e.has_equals) {
            error(e.line, "", "expected KEY=VALUE");
            continue;
        }
        const std::string& key = e.key;
        if (!valid_env_name(key)) {
            error(e.line, key, "not a valid variable name (letters, digits and _)");
            continue;
        }
        if (e.unterminated) {
            error(e.line, key, "unterminated quote (systemd would read the rest of the file)");
            continue;
        }
        if (!valid_utf8(e.value)) {
            error(e.line, key, "invalid UTF-8 (systemd refuses the whole file)");
            continue;
        }
        if (std::any_of(e.value.begin(), e.value.end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 && c != '\t'; })) {
            error(e.line, key, "control characters are not allowed");
            continue;
        }
        if (auto it = line_of.find(key); it != line_of.end()) {
            error(e.line, key, "set twice (first on line " + std::to_string(it->second) + ")");
            continue;
        }
        line_of[key] = e.line;
        values[key] = std::move(e.value);
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
                      "\" is not one of podman, podman-simple, podman-systemd, docker, exec, oci");
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
        } else if (v->front() == '-') {
            error(at("IMAGE"), "IMAGE",
                  "\"" + *v + "\" starts with -: podman and docker would read it as an option");
        } else {
            app.image = *v;
        }
        if (get("EXEC") != nullptr) {
            error(at("EXEC"), "EXEC", "only for KIND=exec; a container's command is CMD");
        }
        // KIND=oci runs crun on a bundle `ondemandctl prepare` made: no podman on the request path
        for (std::string_view key : {"ARGS", "PULL"}) {
            if (app.kind == app_kind::oci && get(key) != nullptr) {
                error(
                    at(key), std::string(key),
                    "podman's, not for KIND=oci (crun runs a bundle made by ondemandctl prepare)");
            }
        }
        if (const std::string* v = get("PULL"); v != nullptr && app.kind != app_kind::oci) {
            if (*v != "never" && *v != "missing" && *v != "always" && *v != "newer") {
                error(at("PULL"), "PULL",
                      "\"" + *v + "\" is not one of never, missing, always, newer");
            }
            app.pull = *v;
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
    // Unknown keys: errors for container kinds. An exec app's other variables are its
    // environment, but one within a typo of a key (IDLE_TIMOUT) is refused all the same.
    for (const auto& [key, line] : line_of) {
        if (is_known_key(key)) {
            continue;
        }
        std::string_view near = nearest_key(key, !is_container(app.kind));
        if (!near.empty()) {
            error(line, key, "unknown key; did you mean " + std::string(near) + "?");
        } else if (is_container(app.kind)) {
            error(line, key,
                  "unknown key (known: KIND IMAGE CMD ARGS PULL HOSTS READY "
                  "START_TIMEOUT IDLE_TIMEOUT QUEUE FAILED_STATUS MEMORY_MAX CPU_WEIGHT "
                  "NETWORK)");
        }
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
            // nginx's hostnames map compares lower-case; so does the duplicate check
            h = lower(h);
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
        } else if (v->starts_with("http:") && !valid_url_path(v->substr(5))) {
            error(at("READY"), "READY",
                  "\"" + *v +
                      "\": the path may hold only A-Z a-z 0-9 - . _ ~ / ! $ & ' ( ) * + , = : @ ? "
                      "and %HH");
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
                error(at(key), key,
                      "\"" + *v +
                          "\" is not a time (e.g. 500ms, 30s, 5m, 1h30m: units y M w d h m s ms, "
                          "each at most once, in that order)");
            } else if (std::string_view(key) == "START_TIMEOUT" && nginx_time_ms(*v) == 0u) {
                error(at(key), key, "must be more than 0 (a start needs time)");
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
    parse_tenancy(app, get, at,
                  [&](unsigned line, std::string_view key, std::string msg, severity level) {
                      res.errors.push_back({path, line, std::string(key), std::move(msg), level});
                  });
    if (!proto::valid_unit_name(app.unit())) {
        error(0, "", "\"" + app.unit() + "\" is not a valid unit name");
    }

    app.hosts_line = at("HOSTS");
    if (const std::string* v = get("HOSTS");
        v == nullptr || v->find_first_not_of(" \t") == std::string::npos) {
        res.errors.push_back({path, at("HOSTS"), "HOSTS",
                              "no HOSTS: nothing routes requests to this app", severity::warning});
    }
    std::stable_sort(res.errors.begin(), res.errors.end(),
                     [](const diagnostic& a, const diagnostic& b) { return a.line < b.line; });
    if (count_errors(res.errors) == 0) {
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
            // The names nginx's hostnames map would match with h (lower-case already):
            // ".example.com" is example.com and *.example.com.
            std::vector<std::string> claims;
            if (h.starts_with(".")) {
                claims = {h.substr(1), "*" + h};
            } else {
                claims = {h};
            }
            for (const std::string& c : claims) {
                if (auto it = host_owner.find(c); it != host_owner.end()) {
                    res.errors.push_back(
                        {f.string(), r.app->hosts_line, "HOSTS",
                         "host \"" + h + "\" is already claimed by " + it->second});
                    ok = false;
                    break;
                }
            }
            if (ok) {
                for (const std::string& c : claims) {
                    host_owner.emplace(c, f.string());
                }
            }
        }
        if (ok) {
            res.apps.push_back(std::move(*r.app));
        }
    }
    return res;
}

} // namespace ondemand::ctl
