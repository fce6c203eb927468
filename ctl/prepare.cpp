// `ondemandctl prepare`: KIND=oci bundles (prepare.h, docs/units.md).
#include "prepare.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <utility>

extern char** environ; // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace ondemand::ctl {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A file descriptor closed on destruction.
class unique_fd {
  public:
    explicit unique_fd(int fd = -1) : fd_(fd) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }
    int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

  private:
    int fd_;
};

struct run_result {
    int status = -1;    // the exit status; -1 when it could not run or died by a signal
    std::string output; // stdout and stderr
};

// The environment for podman: ours, with the KEY=VALUE lines of `env_file` (when it exists)
// replacing or adding variables, as the units' EnvironmentFile=-.../podman.env does.
std::vector<std::string> podman_environment(const std::string& env_file) {
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e != nullptr; ++e) { // NOLINT(*-pointer-arithmetic)
        std::string_view kv(*e);
        auto eq = kv.find('=');
        if (eq != std::string_view::npos) {
            vars[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
        }
    }
    std::ifstream in(env_file);
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (line.empty() || line[0] == '#' || eq == std::string::npos || eq == 0) {
            continue;
        }
        vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    std::vector<std::string> out;
    out.reserve(vars.size());
    for (const auto& [k, v] : vars) {
        std::string kv = k;
        kv += '=';
        kv += v;
        out.push_back(std::move(kv));
    }
    return out;
}

// Runs argv[0] (a full path) with `env`, collecting its stdout and stderr.
run_result run(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    std::array<int, 2> p{};
    if (::pipe2(p.data(), O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe");
    }
    unique_fd rd(p[0]);
    unique_fd wr(p[1]);
    std::vector<char*> args, envp;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str())); // NOLINT(*-const-cast): exec's signature
    }
    args.push_back(nullptr);
    for (const auto& e : env) {
        envp.push_back(const_cast<char*>(e.c_str())); // NOLINT(*-const-cast)
    }
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, wr.get(), 2);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    wr.reset();
    run_result r;
    if (rc != 0) {
        r.output = argv[0] + ": " + std::strerror(rc);
        return r;
    }
    std::array<char, 4096> buf{};
    for (;;) {
        ssize_t n = ::read(rd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        r.output.append(buf.data(), static_cast<std::size_t>(n));
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

std::vector<std::string> strings_of(const json& j) {
    std::vector<std::string> out;
    if (j.is_array()) {
        for (const auto& v : j) {
            if (v.is_string()) {
                out.push_back(v.get<std::string>());
            }
        }
    }
    return out;
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
        throw std::runtime_error("cannot write " + p.string());
    }
}

std::string config_text(const json& config) {
    return config.dump(2) + "\n";
}

image_info inspect(const app_config& app, const std::vector<std::string>& env) {
    run_result r = run({"/usr/bin/podman", "image", "inspect", app.image}, env);
    std::optional<image_info> img;
    if (r.status == 0) {
        img = parse_image_inspect(r.output);
    }
    if (!img) {
        throw std::runtime_error("image " + app.image +
                                 " not found (podman image inspect: " + trimmed(r.output) + ")");
    }
    return *img;
}

// podman image mount, undone by the destructor.
class image_mount {
  public:
    image_mount(std::string image, const std::vector<std::string>& env)
        : image_(std::move(image)), env_(env) {
        run_result r = run({"/usr/bin/podman", "image", "mount", image_}, env_);
        if (r.status != 0) {
            throw std::runtime_error("podman image mount " + image_ + ": " + trimmed(r.output));
        }
        path_ = trimmed(r.output);
    }
    image_mount(const image_mount&) = delete;
    image_mount& operator=(const image_mount&) = delete;
    ~image_mount() {
        try {
            run({"/usr/bin/podman", "image", "umount", image_}, env_);
        } catch (...) { // NOLINT(bugprone-empty-catch): best effort; podman unmounts it later
        }
    }
    const std::string& path() const { return path_; }

  private:
    std::string image_;
    const std::vector<std::string>& env_;
    std::string path_;
};

// "0", "1000:1000", "root" or "" (root): the uid and gid; a user name needs the image's passwd.
std::pair<unsigned, unsigned> user_ids(const std::string& user) {
    if (user.empty() || user == "root" || user == "root:root") {
        return {0, 0};
    }
    auto number = [&](std::string_view s) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
            throw std::runtime_error("the image's user \"" + user +
                                     "\" is not numeric (uid or uid:gid): KIND=oci needs numbers");
        }
        return v;
    };
    auto colon = user.find(':');
    if (colon == std::string::npos) {
        unsigned uid = number(user);
        return {uid, uid};
    }
    return {number(std::string_view(user).substr(0, colon)),
            number(std::string_view(user).substr(colon + 1))};
}

} // namespace

std::optional<image_info> parse_image_inspect(std::string_view text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty() || !j[0].is_object() ||
        !j[0].contains("Id") || !j[0]["Id"].is_string()) {
        return std::nullopt;
    }
    const json& o = j[0];
    image_info img;
    img.id = o["Id"].get<std::string>();
    if (o.contains("Config") && o["Config"].is_object()) {
        const json& c = o["Config"];
        img.env = strings_of(c.value("Env", json::array()));
        img.entrypoint = strings_of(c.value("Entrypoint", json::array()));
        img.cmd = strings_of(c.value("Cmd", json::array()));
        if (c.contains("WorkingDir") && c["WorkingDir"].is_string()) {
            img.workdir = c["WorkingDir"].get<std::string>();
        }
        if (c.contains("User") && c["User"].is_string()) {
            img.user = c["User"].get<std::string>();
        }
    }
    return img;
}

json oci_config(const app_config& app, const image_info& img, const std::string& socket_dir) {
    std::vector<std::string> args;
    if (!app.cmd.empty()) {
        std::istringstream in(app.cmd); // as systemd splits an unquoted $CMD
        for (std::string w; in >> w;) {
            args.push_back(w);
        }
    } else {
        args = img.entrypoint;
        args.insert(args.end(), img.cmd.begin(), img.cmd.end());
    }
    if (args.empty()) {
        throw std::runtime_error("no command: the image has none; set CMD in " + app.file);
    }
    std::vector<std::string> env = img.env;
    if (std::none_of(env.begin(), env.end(),
                     [](const auto& e) { return e.starts_with("PATH="); })) {
        env.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    }
    env.emplace_back("ONDEMAND_SOCKET=/run/ondemand/app.sock");
    auto [uid, gid] = user_ids(img.user);
    // podman's default capabilities for a container
    const json caps = {"CAP_CHOWN",   "CAP_DAC_OVERRIDE",     "CAP_FOWNER",    "CAP_FSETID",
                       "CAP_KILL",    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP",   "CAP_SETGID",
                       "CAP_SETPCAP", "CAP_SETUID",           "CAP_SYS_CHROOT"};
    auto mount = [](const char* dest, const char* type, const char* source, json options) {
        return json{
            {"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
    };
    // NETWORK=host: the host's network namespace (no "network" entry); else a private one
    json namespaces = json::array();
    for (const char* ns : {"pid", "network", "ipc", "uts", "mount"}) {
        if (std::string_view(ns) != "network" || app.network != "host") {
            namespaces.push_back({{"type", ns}});
        }
    }
    return json{
        {"ociVersion", "1.0.0"},
        {"process",
         {{"terminal", false},
          {"user", {{"uid", uid}, {"gid", gid}}},
          {"args", args},
          {"env", env},
          {"cwd", img.workdir.empty() ? "/" : img.workdir},
          {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
          {"noNewPrivileges", true}}},
        {"root", {{"path", "rootfs"}, {"readonly", true}}},
        {"hostname", app.name.substr(0, 63)},
        {"mounts",
         {mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
          mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
          mount("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
          mount("/dev/shm", "tmpfs", "shm",
                {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
          mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
          mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
          mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777"}),
          mount("/run", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755"}),
          json{{"destination", "/run/ondemand"},
               {"type", "bind"},
               {"source", (fs::path(socket_dir) / app.name).string()},
               {"options", {"rbind", "nosuid", "nodev"}}}}},
        {"linux",
         {{"namespaces", namespaces},
          {"maskedPaths",
           {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
            "/proc/scsi"}},
          {"readonlyPaths",
           {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
}

bundle_check check_bundle(const app_config& app, const oci_paths& paths) {
    fs::path bundle = fs::path(paths.oci_dir) / app.name;
    std::error_code ec;
    if (!fs::is_regular_file(bundle / "config.json", ec)) {
        return {bundle_state::missing, "not prepared: run ondemandctl prepare " + app.name};
    }
    image_info img;
    try {
        img = inspect(app, podman_environment(paths.podman_env));
    } catch (const std::exception& e) {
        return {bundle_state::stale, std::string("stale: ") + e.what()};
    }
    auto stale = [&](const std::string& what) {
        return bundle_check{bundle_state::stale,
                            "stale (" + what + "): run ondemandctl prepare " + app.name};
    };
    if (trimmed(read_file(bundle / "image-id")) != img.id) {
        return stale("the image changed");
    }
    try {
        if (read_file(bundle / "config.json") !=
            config_text(oci_config(app, img, paths.socket_dir))) {
            return stale("the app file changed");
        }
    } catch (const std::exception& e) {
        return stale(e.what());
    }
    return {bundle_state::current, ""};
}

void prepare_bundle(const app_config& app, const oci_paths& paths, std::ostream& out) {
    std::vector<std::string> env = podman_environment(paths.podman_env);
    image_info img = inspect(app, env);
    std::string config = config_text(oci_config(app, img, paths.socket_dir));
    fs::path dir(paths.oci_dir);
    fs::path link = dir / app.name;
    if (read_file(link / "image-id") == img.id + "\n" &&
        read_file(link / "config.json") == config) {
        out << app.name << ": up to date (image " << img.id.substr(0, 12) << ")\n";
        return;
    }
    fs::create_directories(dir);
    auto now = std::chrono::system_clock::now().time_since_epoch().count();
    std::string stamp = "." + app.name + "." + img.id.substr(0, 12) + "." + std::to_string(now);
    fs::path fresh = dir / stamp;
    try {
        fs::create_directories(fresh / "rootfs");
        {
            image_mount m(app.image, env);
            run_result cp =
                run({"/bin/cp", "-a", m.path() + "/.", (fresh / "rootfs").string()}, env);
            if (cp.status != 0) {
                throw std::runtime_error("copying the image's files: " + trimmed(cp.output));
            }
        }
        write_file(fresh / "config.json", config);
        write_file(fresh / "image-id", img.id + "\n");
        // swap: a new symlink renamed over the old one (or over nothing)
        fs::path tmp_link = dir / ("." + app.name + ".link");
        fs::remove(tmp_link);
        fs::create_directory_symlink(stamp, tmp_link);
        if (fs::exists(fs::symlink_status(link)) && !fs::is_symlink(fs::symlink_status(link))) {
            fs::remove_all(link); // a bundle made by hand, not by prepare
        }
        fs::rename(tmp_link, link);
    } catch (...) {
        std::error_code ec;
        fs::remove_all(fresh, ec);
        throw;
    }
    // keep the new bundle and the one before it (a running app uses it until it restarts)
    std::vector<fs::path> old;
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string n = e.path().filename().string();
        if (n.starts_with("." + app.name + ".") && n != stamp && e.is_directory() &&
            !e.is_symlink() && n.size() > app.name.size() + 14 &&
            n.find('.', app.name.size() + 2) == app.name.size() + 14) {
            old.push_back(e.path());
        }
    }
    std::sort(old.begin(), old.end(), [](const fs::path& a, const fs::path& b) {
        return fs::last_write_time(a) > fs::last_write_time(b);
    });
    for (std::size_t i = 1; i < old.size(); ++i) {
        fs::remove_all(old[i]);
    }
    out << app.name << ": prepared " << link.string() << " (image " << img.id.substr(0, 12)
        << ")\n";
}

int prepare_apps(const std::string& apps_dir, const std::vector<std::string>& names,
                 const oci_paths& paths, std::ostream& out, std::ostream& err) {
    dir_result d = load_apps_dir(apps_dir);
    int rc = 0;
    for (const auto& n : names) {
        auto it =
            std::find_if(d.apps.begin(), d.apps.end(), [&](const auto& a) { return a.name == n; });
        if (it == d.apps.end() || it->kind != app_kind::oci) {
            err << n << ": " << (it == d.apps.end() ? "no valid app file" : "not KIND=oci")
                << " in " << apps_dir << " (ondemandctl check)\n";
            rc = 1;
        }
    }
    for (const auto& a : d.apps) {
        bool named = std::find(names.begin(), names.end(), a.name) != names.end();
        if (a.kind != app_kind::oci || (!names.empty() && !named)) {
            continue;
        }
        try {
            prepare_bundle(a, paths, out);
        } catch (const std::exception& e) {
            err << a.name << ": " << e.what() << "\n";
            rc = 1;
        }
    }
    return rc;
}

std::vector<diagnostic> bundle_warnings(const std::vector<app_config>& apps,
                                        const oci_paths& paths) {
    std::vector<diagnostic> out;
    for (const auto& a : apps) {
        if (a.kind == app_kind::oci) {
            bundle_check b = check_bundle(a, paths);
            if (b.state != bundle_state::current) {
                out.push_back({a.file, 0, "", b.why, severity::warning});
            }
        }
    }
    return out;
}

} // namespace ondemand::ctl
