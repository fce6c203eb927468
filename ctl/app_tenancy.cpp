#include "app_tenancy.h"

#include "atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

namespace ondemand::ctl {

namespace {

bool digits(std::string_view s, std::size_t max_len) {
    return !s.empty() && s.size() <= max_len &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// A user name systemd's User= takes without complaint (its strict form: [a-z_][a-z0-9_-]*,
// at most 31 characters, an optional trailing $), or a numeric uid below 4294967295.
bool valid_user(std::string_view u) {
    if (digits(u, 10)) {
        return std::stoull(std::string(u)) < 4294967295ULL;
    }
    if (u.ends_with('$')) {
        u.remove_suffix(1);
    }
    if (u.empty() || u.size() > 31 || !((u[0] >= 'a' && u[0] <= 'z') || u[0] == '_')) {
        return false;
    }
    return std::all_of(u.begin(), u.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

// An absolute path of A-Z a-z 0-9 / . _ - + @ : , = ~ without . or .. components: nothing a
// unit file would read as a specifier (%), an escape (\) or the end of the value.
bool valid_workdir(std::string_view p) {
    if (p.empty() || p[0] != '/' || p.size() > 4096) {
        return false;
    }
    if (!std::all_of(p.begin(), p.end(), [](char c) {
            return alnum(c) || std::string_view("/._-+@:,=~").find(c) != std::string_view::npos;
        })) {
        return false;
    }
    std::string s(p);
    s += '/';
    return s.find("/./") == std::string::npos && s.find("/../") == std::string::npos;
}

// MemoryMax=: bytes with an optional K M G T suffix (base 1024), a percentage of the host's
// memory (1%-100%), or infinity.
bool valid_memory(std::string_view m) {
    if (m == "infinity") {
        return true;
    }
    if (m.ends_with('%')) {
        m.remove_suffix(1);
        return digits(m, 3) && std::stoul(std::string(m)) >= 1 && std::stoul(std::string(m)) <= 100;
    }
    if (!m.empty() && std::string_view("KMGT").find(m.back()) != std::string_view::npos) {
        m.remove_suffix(1);
    }
    return digits(m, 15) && m.find_first_not_of('0') != std::string_view::npos;
}

// A podman/docker network's name (not an option, no container:ID or ns:PATH forms).
bool valid_network_name(std::string_view n) {
    return !n.empty() && n.size() <= 64 && alnum(n[0]) &&
           std::all_of(n.begin(), n.end(),
                       [](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

std::string read_file(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

} // namespace

void parse_tenancy(
    app_config& app, const std::function<const std::string*(std::string_view)>& get,
    const std::function<unsigned(std::string_view)>& at,
    const std::function<void(unsigned, std::string_view, std::string, severity)>& report) {
    auto error = [&](std::string_view key, std::string msg) {
        report(at(key), key, std::move(msg), severity::error);
    };
    const bool exec = app.kind == app_kind::exec;
    const std::string kind(kind_name(app.kind));

    if (const std::string* v = get("USER")) {
        if (!exec) {
            error("USER", "only for KIND=exec (a container runs as its image's user; "
                          "ARGS=--user=... changes it)");
        } else if (!valid_user(*v)) {
            error("USER",
                  "\"" + *v + "\" is not a user name ([a-z_][a-z0-9_-]*, at most 31) or a uid");
        } else {
            app.user = *v;
            if (*v == "root" || *v == "0") {
                report(at("USER"), "USER",
                       "the app runs as root (without USER it runs as a dynamic user)",
                       severity::warning);
            }
        }
    }
    if (const std::string* v = get("WORKDIR")) {
        if (!exec) {
            error("WORKDIR", "only for KIND=exec (a container's: ARGS=--workdir=DIR)");
        } else if (!valid_workdir(*v)) {
            error("WORKDIR", "\"" + *v +
                                 "\" is not an absolute path of A-Z a-z 0-9 / . _ - + @ : , = ~ "
                                 "(without . or .. components)");
        } else {
            app.workdir = *v;
        }
    }
    // The docker engine runs containers under dockerd, outside the unit's cgroup: a limit on
    // the unit would not bind the container.
    const char* docker_hint = "docker runs the container under dockerd, outside the unit's "
                              "cgroup: use ARGS=";
    if (const std::string* v = get("MEMORY_MAX")) {
        if (app.kind == app_kind::docker) {
            error("MEMORY_MAX", std::string(docker_hint) + "--memory=...");
        } else if (!valid_memory(*v)) {
            error("MEMORY_MAX", "\"" + *v +
                                    "\" is not a size (bytes with K, M, G or T: 512M), a "
                                    "percentage (1%-100%) or infinity");
        } else {
            app.memory_max = *v;
        }
    }
    if (const std::string* v = get("CPU_WEIGHT")) {
        if (app.kind == app_kind::docker) {
            error("CPU_WEIGHT", std::string(docker_hint) + "--cpu-shares=...");
        } else if (!digits(*v, 5) || std::stoul(*v) < 1 || std::stoul(*v) > 10000) {
            error("CPU_WEIGHT", "\"" + *v + "\" is not a number from 1 to 10000 (default 100)");
        } else {
            app.cpu_weight = *v;
        }
    }
    if (const std::string* v = get("NETWORK")) {
        bool named = *v != "none" && *v != "host";
        if (named && exec) {
            error("NETWORK", "\"" + *v +
                                 "\": an exec app's NETWORK is none (a private network: only "
                                 "its unix socket) or host; named networks are containers'");
        } else if (named && app.kind == app_kind::oci) {
            error("NETWORK", "\"" + *v +
                                 "\": a KIND=oci app's NETWORK is none (its own network "
                                 "namespace with only lo) or host; named networks need an engine");
        } else if (named && !valid_network_name(*v)) {
            error("NETWORK", "\"" + *v +
                                 "\" is not none, host or a network's name (A-Z a-z 0-9 _ . -, "
                                 "starting with a letter or digit)");
        } else {
            app.network = *v;
        }
    }
    if (const std::string* v = get("ARGS"); v != nullptr && !exec) {
        std::istringstream words(*v);
        std::string w;
        while (words >> w) {
            if (w == "--network" || w == "--net" || w.starts_with("--network=") ||
                w.starts_with("--net=")) {
                std::string msg = "\"" + w + "\": set the network with NETWORK= (";
                msg += kind;
                msg += " would get two networks)";
                error("ARGS", std::move(msg));
                break;
            }
        }
    }
}

std::string dynamic_user_name(std::string_view app_name) {
    bool plain =
        !app_name.empty() && app_name.size() <= 22 &&
        std::all_of(app_name.begin(), app_name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        });
    if (plain) {
        return "ondemand-" + std::string(app_name);
    }
    std::uint32_t h = 2166136261U; // FNV-1a: stable across versions and machines
    for (char c : app_name) {
        h = (h ^ static_cast<unsigned char>(c)) * 16777619U;
    }
    std::string out = "ondemand-";
    for (char c : app_name.substr(0, 13)) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        out += ok ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_';
    }
    char hex[10];
    std::snprintf(hex, sizeof hex, "-%08x", h);
    return out + hex;
}

std::string unit_dropin(const app_config& app) {
    std::string settings;
    if (app.kind == app_kind::exec) {
        if (!app.user.empty()) {
            settings += "DynamicUser=no\nUser=" + app.user + "\n";
        } else {
            settings += "User=" + dynamic_user_name(app.name) + "\n";
        }
        if (!app.workdir.empty()) {
            settings += "WorkingDirectory=" + app.workdir + "\n";
        }
        if (app.network == "host") {
            settings += "PrivateNetwork=no\n";
        }
    }
    if (!app.memory_max.empty()) {
        settings += "MemoryMax=" + app.memory_max + "\n";
    }
    if (!app.cpu_weight.empty()) {
        settings += "CPUWeight=" + app.cpu_weight + "\n";
    }
    if (settings.empty()) {
        return "";
    }
    return "# Written by `ondemandctl apply` from " + app.file +
           " (docs/units.md): edits here\n# are overwritten. Change the app file, then run "
           "`ondemandctl apply` again.\n[Service]\n" +
           settings;
}

apply_result apply_dropins(const std::vector<app_config>& apps,
                           const std::filesystem::path& unit_dir) {
    namespace fs = std::filesystem;
    apply_result res;
    std::map<std::string, std::string> wanted; // UNIT.d -> text
    for (const app_config& a : apps) {
        std::string text = unit_dropin(a);
        if (!text.empty()) {
            wanted[a.unit() + ".d"] = std::move(text);
        }
    }
    std::error_code ec;
    // Stale drop-ins first: an app that is gone, changed its KIND, or dropped its keys.
    for (fs::directory_iterator it(unit_dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::string dir = it->path().filename().string();
        if (!dir.starts_with("ondemand-") || !dir.ends_with(".service.d") || wanted.contains(dir)) {
            continue;
        }
        fs::path file = it->path() / dropin_name;
        if (fs::exists(file, ec)) {
            if (!fs::remove(file, ec) || ec) {
                throw std::runtime_error("cannot remove " + file.string() + ": " + ec.message());
            }
            res.removed.push_back(file.string());
            fs::remove(it->path(), ec); // only when empty: an operator's own drop-ins stay
            ec.clear();
        }
    }
    if (ec && ec != std::errc::no_such_file_or_directory) {
        throw std::runtime_error("cannot read " + unit_dir.string() + ": " + ec.message());
    }
    for (const auto& [dir, text] : wanted) {
        fs::path d = unit_dir / dir;
        fs::create_directories(d, ec);
        if (ec) {
            throw std::runtime_error("cannot create " + d.string() + ": " + ec.message());
        }
        fs::path file = d / dropin_name;
        if (fs::exists(file, ec) && read_file(file) == text) {
            res.unchanged.push_back(file.string());
            continue;
        }
        write_file_atomically(file, text);
        res.written.push_back(file.string());
    }
    return res;
}

std::vector<diagnostic> dropin_warnings(const std::vector<app_config>& apps,
                                        const std::filesystem::path& unit_dir) {
    std::vector<diagnostic> out;
    for (const app_config& a : apps) {
        std::filesystem::path file = unit_dir / (a.unit() + ".d") / dropin_name;
        std::error_code ec;
        bool exists = std::filesystem::exists(file, ec);
        std::string want = unit_dropin(a);
        if ((want.empty() && !exists) || (exists && read_file(file) == want)) {
            continue;
        }
        out.push_back({a.file, 0, "",
                       "the unit settings of this file differ from " + file.string() +
                           ": run ondemandctl apply",
                       severity::warning});
    }
    return out;
}

std::vector<diagnostic> file_mode_warnings(const std::filesystem::path& path, bool is_dir) {
    std::vector<diagnostic> out;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return out;
    }
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    auto warn = [&](std::string msg) {
        out.push_back({path.string(), 0, "", std::move(msg), severity::warning});
    };
    if (is_dir) {
        if ((st.st_mode & 0007) != 0) {
            warn(std::string("mode ") + mode +
                 ": every local user may read the app files' names (chmod 0750; the app files "
                 "may hold secrets)");
        }
        if ((st.st_mode & 0022) != 0) {
            warn(std::string("mode ") + mode + ": writable by its group or others (chmod 0750)");
        }
        return out;
    }
    if ((st.st_mode & 0022) != 0) {
        warn(std::string("mode ") + mode +
             ": writable by its group or others, but an app file is root-equivalent (EXEC, "
             "ARGS and IMAGE run as root's commands): chmod 0640");
    }
    if ((st.st_mode & 0004) != 0) {
        warn(std::string("mode ") + mode +
             ": readable by every local user, but an app file may hold the app's secrets: "
             "chmod 0640");
    }
    if (st.st_uid != 0) {
        warn("owned by uid " + std::to_string(st.st_uid) +
             ", not root: its owner can run commands as root (chown root)");
    }
    return out;
}

} // namespace ondemand::ctl
