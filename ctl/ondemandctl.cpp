// ondemandctl: look at and drive ondemand's apps.
//   status [APP] [--json]  each app: helperd's state and counters, memory and CPU from systemd;
//                     with APP, one app in detail (its app file, its last events)
//   list              the app files: name, kind, unit, hosts
//   start APP         start an app now (as a cold request would) and wait until it is ready
//   stop APP          stop an app now
//   gen-nginx         write the nginx include: one upstream per app file + `map $host $app`
//   check [FILE...]   validate app files; errors name the file, the line and the key
//   apply             the app files' unit settings as drop-ins (USER, MEMORY_MAX, ...)
//   prepare [APP...]  make or refresh the bundles of KIND=oci apps (default: all of them)
// See docs/units.md.
#include "app_file.h"
#include "app_tenancy.h"
#include "atomic_file.h"
#include "cmd_apply.h"
#include "gen_nginx.h"
#include "helper_client.h"
#include "nginx_check.h"
#include "ondemand_protocol.h"
#include "ondemand_version.h"
#include "prepare.h"
#include "status_view.h"
#include "unit_usage.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using namespace ondemand;
using namespace std::chrono_literals;

namespace {

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : fallback;
}

struct globals {
    std::string socket = env_or("ONDEMAND_HELPERD_SOCKET", "/run/ondemand/helperd.sock");
    std::string apps_dir = env_or("ONDEMAND_APPS_DIR", "/etc/ondemand/apps");
    std::string socket_dir = env_or("ONDEMAND_SOCKET_DIR", "/run/ondemand/apps");
    // helperd's key (HELLO key=): used when readable; --key-file makes it required.
    std::string key_file = env_or("ONDEMAND_KEY_FILE", "/etc/ondemand/helperd.key");
    bool key_file_given = false;
    // systemd's bus, for the units' memory and CPU: system, user, or a D-Bus address
    std::string bus = env_or("ONDEMAND_BUS", "system");
    // KIND=oci bundles (the unit's %S/ondemand/oci), and podman's environment for prepare
    std::string oci_dir = env_or("ONDEMAND_OCI_DIR", "/var/lib/ondemand/oci");
    std::string podman_env = env_or("ONDEMAND_PODMAN_ENV", "");

    ctl::oci_paths oci() const {
        return {oci_dir, socket_dir,
                podman_env.empty() ? (fs::path(apps_dir).parent_path() / "podman.env").string()
                                   : podman_env};
    }
};

// A connection to helperd, authenticated when the key file can be read.
std::unique_ptr<ctl::helper_client> connect_helperd(const globals& g) {
    auto c = std::make_unique<ctl::helper_client>(g.socket);
    c->authenticate(g.key_file, g.key_file_given);
    return c;
}

// nginx time -> milliseconds (the syntax is checked by valid_nginx_time first).
std::uint64_t time_ms(const std::string& t, std::uint64_t fallback) {
    if (t.empty() || !ctl::valid_nginx_time(t)) {
        return fallback;
    }
    std::uint64_t total = 0, n = 0;
    bool digits_only = true;
    for (std::size_t i = 0; i < t.size(); ++i) {
        char c = t[i];
        if (c >= '0' && c <= '9') {
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
            continue;
        }
        digits_only = false;
        std::uint64_t unit = 1000;
        if (c == 'm' && i + 1 < t.size() && t[i + 1] == 's') {
            unit = 1;
            ++i;
        } else {
            switch (c) {
            case 's':
                unit = 1000;
                break;
            case 'm':
                unit = 60'000;
                break;
            case 'h':
                unit = 3'600'000;
                break;
            case 'd':
                unit = 86'400'000;
                break;
            case 'w':
                unit = 7 * 86'400'000ULL;
                break;
            case 'M':
                unit = 30 * 86'400'000ULL;
                break;
            case 'y':
                unit = 365 * 86'400'000ULL;
                break;
            default:
                break;
            }
        }
        total += n * unit;
        n = 0;
    }
    return digits_only ? n * 1000 : total;
}

void print_errors(const std::vector<ctl::diagnostic>& errors) {
    for (const auto& e : errors) {
        std::cerr << e.to_string() << "\n";
    }
}

ctl::app_config load_app(const globals& g, const std::string& name) {
    if (!proto::valid_app_name(name)) {
        throw std::runtime_error("\"" + name + "\" is not a valid app name");
    }
    fs::path file = fs::path(g.apps_dir) / (name + ".conf");
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        throw std::runtime_error("no app file " + file.string());
    }
    std::stringstream buf;
    buf << in.rdbuf();
    ctl::parse_result r = ctl::parse_app_file(file.string(), buf.str());
    if (!r.app) {
        print_errors(r.errors);
        throw std::runtime_error(file.string() + " has errors (ondemandctl check)");
    }
    return *r.app;
}

// STATUS from helperd, one app_view per APP line; throws when helperd cannot be asked.
std::vector<ctl::app_view> query_status(const globals& g) {
    auto conn = connect_helperd(g);
    ctl::helper_client& c = *conn;
    proto::message m;
    m.kind = proto::verb::status;
    c.send(m);
    std::vector<ctl::app_view> rows;
    for (;;) {
        auto line = c.read_line(5s);
        if (!line) {
            throw std::runtime_error("helperd did not answer STATUS within 5 s");
        }
        proto::parse_result r = proto::parse(*line);
        if (!r.ok) {
            throw std::runtime_error(std::string("helperd sent a bad line: ") + r.error);
        }
        if (r.msg.kind == proto::verb::end) {
            return rows;
        }
        if (r.msg.kind == proto::verb::error) {
            throw std::runtime_error(c.explain_error(r.msg.text));
        }
        if (r.msg.kind == proto::verb::app) {
            ctl::app_view row;
            row.app = std::string(r.msg.app);
            row.state = std::string(r.msg.state);
            row.unit = std::string(r.msg.unit);
            row.from_helperd = true;
            ctl::apply_status_attrs(row, r.msg.attrs);
            rows.push_back(std::move(row));
        }
    }
}

std::uint64_t now_unix_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// status [APP] [--json]: helperd's view, the app files, and systemd's memory and CPU figures
// (read here, not by helperd: they are wanted just as much when helperd is down).
int cmd_status(const globals& g, bool json, const std::string& only) {
    std::map<std::string, ctl::app_view> by_app;
    std::string helperd_error;
    try {
        for (auto& v : query_status(g)) {
            by_app[v.app] = std::move(v);
        }
    } catch (const std::exception& e) {
        helperd_error = e.what();
    }
    bool helperd_up = helperd_error.empty();
    if (fs::is_directory(g.apps_dir)) {
        ctl::dir_result d = ctl::load_apps_dir(g.apps_dir);
        for (const auto& a : d.apps) {
            auto [it, fresh] = by_app.try_emplace(a.name);
            ctl::app_view& v = it->second;
            if (fresh) {
                // An app with a file that helperd has no record of (no request since it started).
                v.app = a.name;
                v.state = helperd_up ? "cold" : "";
                v.unit = a.unit();
            }
            v.file = a.file;
            v.kind = std::string(ctl::kind_name(a.kind));
            v.socket = g.socket_dir + "/" + a.name + "/app.sock";
            v.ready = a.ready;
            v.start_timeout = a.start_timeout;
            v.idle_timeout = a.idle_timeout;
        }
    }
    if (!only.empty()) {
        auto it = by_app.find(only);
        if (it == by_app.end()) {
            std::cerr << "ondemandctl: no app " << only << ": no app file in " << g.apps_dir
                      << (helperd_up ? " and helperd has no record of it\n" : "\n");
            return 1;
        }
        ctl::app_view one = std::move(it->second);
        by_app.clear();
        by_app.emplace(only, std::move(one));
    }
    try {
        ctl::unit_reader systemd(ctl::parse_bus_choice(g.bus));
        for (auto& [name, v] : by_app) {
            ctl::unit_usage u = systemd.read(v.unit);
            v.unit_state = u.active_state;
            v.memory = u.memory;
            v.cpu_ns = u.cpu_ns;
        }
    } catch (const std::exception& e) {
        std::cerr << "ondemandctl: no memory/CPU figures: " << e.what() << " (--bus)\n";
    }
    if (!helperd_up) {
        std::cerr << "ondemandctl: helperd is not running (" << helperd_error << ")\n"
                  << "ondemandctl: start it with: systemctl start ondemand-helperd.socket\n"
                  << "ondemandctl: below, the app files with what systemd says of their units\n";
    }
    std::uint64_t now = now_unix_ms();
    if (json) {
        if (!only.empty()) {
            std::cout << ctl::to_json(by_app.begin()->second, true).dump(2) << "\n";
        } else {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& [name, v] : by_app) {
                out.push_back(ctl::to_json(v, false));
            }
            std::cout << out.dump(2) << "\n";
        }
    } else if (!only.empty()) {
        std::cout << ctl::render_detail(by_app.begin()->second, now);
    } else {
        std::vector<ctl::app_view> rows;
        rows.reserve(by_app.size());
        for (auto& [name, v] : by_app) {
            rows.push_back(v);
        }
        std::cout << ctl::render_table(rows, ctl::terminal_width(), now);
    }
    return helperd_up ? 0 : 3;
}

int cmd_list(const globals& g) {
    ctl::dir_result d = ctl::load_apps_dir(g.apps_dir);
    print_errors(d.errors);
    std::printf("%-20s  %-14s  %-40s  %s\n", "APP", "KIND", "UNIT", "HOSTS");
    for (const auto& a : d.apps) {
        std::string hosts;
        for (const auto& h : a.hosts) {
            hosts += (hosts.empty() ? "" : " ") + h;
        }
        std::printf("%-20s  %-14s  %-40s  %s\n", a.name.c_str(),
                    std::string(ctl::kind_name(a.kind)).c_str(), a.unit().c_str(), hosts.c_str());
    }
    return ctl::count_errors(d.errors) == 0 ? 0 : 1;
}

// Sends `m` and waits for the answer about m.app (other apps' pushes are skipped).
proto::message await_answer(ctl::helper_client& c, const proto::message& m,
                            std::chrono::milliseconds timeout, std::string& text) {
    c.send(m);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        auto line = left.count() > 0 ? c.read_line(left) : std::nullopt;
        if (!line) {
            throw std::runtime_error("no answer from helperd within " +
                                     std::to_string(timeout.count()) + " ms");
        }
        proto::parse_result r = proto::parse(*line);
        if (!r.ok) {
            throw std::runtime_error(std::string("helperd sent a bad line: ") + r.error);
        }
        if (r.msg.kind == proto::verb::error) {
            throw std::runtime_error(c.explain_error(r.msg.text));
        }
        if (r.msg.app == m.app && r.msg.kind != proto::verb::down) {
            text = std::string(r.msg.text);
            if (r.msg.kind == proto::verb::failed) {
                std::string code(proto::failure_name(r.msg.reason));
                if (!text.empty()) {
                    code += ": ";
                    code += text;
                }
                text = std::move(code);
            }
            return r.msg;
        }
    }
}

int cmd_start(const globals& g, const std::string& name) {
    ctl::app_config a = load_app(g, name);
    std::string unit = a.unit(), socket = g.socket_dir + "/" + a.name + "/app.sock";
    proto::message m;
    m.kind = proto::verb::start;
    m.app = a.name;
    m.gen = 1;
    m.unit = unit;
    m.ready = a.ready;
    m.timeout_ms = time_ms(a.start_timeout, 30'000);
    m.socket = socket;
    auto conn = connect_helperd(g);
    ctl::helper_client& c = *conn;
    auto t0 = std::chrono::steady_clock::now();
    std::string text;
    proto::message r = await_answer(c, m, std::chrono::milliseconds(m.timeout_ms) + 5s, text);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (r.kind == proto::verb::ready) {
        std::printf("%s: ready after %lld ms (%s)\n", a.name.c_str(), static_cast<long long>(ms),
                    unit.c_str());
        return 0;
    }
    std::fprintf(stderr, "%s: failed to start (%s): %s\n", a.name.c_str(), unit.c_str(),
                 text.c_str());
    return 1;
}

int cmd_stop(const globals& g, const std::string& name) {
    ctl::app_config a = load_app(g, name);
    std::string unit = a.unit();
    proto::message m;
    m.kind = proto::verb::stop;
    m.app = a.name;
    m.gen = 1;
    m.unit = unit;
    m.force = true; // an operator's stop: even while nginx uses the app
    auto conn = connect_helperd(g);
    ctl::helper_client& c = *conn;
    std::string text;
    proto::message r = await_answer(c, m, 60s, text);
    if (r.kind == proto::verb::stopped) {
        std::printf("%s: stopped (%s)\n", a.name.c_str(), unit.c_str());
        return 0;
    }
    std::fprintf(stderr, "%s: failed to stop (%s): %s\n", a.name.c_str(), unit.c_str(),
                 text.c_str());
    return 1;
}

int cmd_gen_nginx(const globals& g, const std::string& output, const std::string& variable) {
    ctl::dir_result d = ctl::load_apps_dir(g.apps_dir);
    print_errors(d.errors); // warnings too
    if (ctl::count_errors(d.errors) != 0) {
        std::cerr << "gen-nginx: nothing written: fix the app files first\n";
        return 1;
    }
    ctl::gen_options opts;
    opts.socket_dir = g.socket_dir;
    opts.variable = variable;
    opts.source = g.apps_dir;
    std::string text = ctl::gen_nginx(d.apps, opts);
    if (output.empty() || output == "-") {
        std::cout << text;
        return 0;
    }
    ctl::write_file_atomically(output, text); // nginx never reads a half-written include
    std::cerr << "gen-nginx: wrote " << output << " (" << d.apps.size() << " apps)\n";
    return 0;
}

// `check`'s last step (nginx_check.h); the module and nginx from the flag or the environment.
int nginx_test(const globals& g, const std::vector<ctl::app_config>& apps,
               const std::string& module_flag, bool required) {
    ctl::nginx_check_options o;
    o.module = !module_flag.empty() ? module_flag
                                    : env_or("ONDEMAND_NGINX_MODULE",
                                             "/usr/lib/nginx/modules/ngx_http_ondemand_module.so");
    o.nginx = env_or("ONDEMAND_NGINX", "/usr/sbin/nginx");
    o.gen.socket_dir = g.socket_dir;
    o.gen.source = g.apps_dir;
    o.helperd_socket = g.socket;
    o.required = required;
    return ctl::nginx_check(apps, o);
}

int cmd_check(const globals& g, const std::vector<std::string>& files,
              const std::string& nginx_module, bool nginx_required) {
    std::vector<ctl::diagnostic> errors;
    std::vector<ctl::app_config> apps;
    std::size_t ok = 0;
    if (files.empty()) {
        ctl::dir_result d = ctl::load_apps_dir(g.apps_dir);
        errors = ctl::file_mode_warnings(g.apps_dir, true);
        errors.insert(errors.end(), d.errors.begin(), d.errors.end());
        std::error_code ec;
        for (fs::directory_iterator it(g.apps_dir, ec), end; !ec && it != end; it.increment(ec)) {
            if (it->path().extension() == ".conf") {
                auto w = ctl::file_mode_warnings(it->path(), false);
                errors.insert(errors.end(), w.begin(), w.end());
            }
        }
        auto stale =
            ctl::dropin_warnings(d.apps, env_or("ONDEMAND_UNIT_DIR", "/etc/systemd/system"));
        errors.insert(errors.end(), stale.begin(), stale.end());
        ok = d.apps.size();
        apps = d.apps;
    } else {
        for (const auto& f : files) {
            std::ifstream in(f, std::ios::binary);
            if (!in) {
                errors.push_back({f, 0, "", "cannot read the file"});
                continue;
            }
            std::stringstream buf;
            buf << in.rdbuf();
            ctl::parse_result r = ctl::parse_app_file(f, buf.str());
            auto w = ctl::file_mode_warnings(f, false);
            errors.insert(errors.end(), w.begin(), w.end());
            errors.insert(errors.end(), r.errors.begin(), r.errors.end());
            ok += r.app ? 1 : 0;
            if (r.app) {
                apps.push_back(std::move(*r.app));
            }
        }
    }
    for (auto& w : ctl::bundle_warnings(apps, g.oci())) {
        errors.push_back(std::move(w));
    }
    print_errors(errors);
    std::size_t n_errors = ctl::count_errors(errors);
    std::size_t n_warnings = errors.size() - n_errors;
    std::printf("%zu app file(s) OK, %zu error(s)", ok, n_errors);
    if (n_warnings != 0) {
        std::printf(", %zu warning(s)", n_warnings); // warnings do not fail check
    }
    std::printf("\n");
    if (n_errors != 0) {
        return 1;
    }
    std::fflush(stdout);
    return nginx_test(g, apps, nginx_module, nginx_required) == 1 ? 1 : 0;
}

} // namespace

namespace {

// The first word that is neither an option nor an option's value, when it names no subcommand:
// `ondemandctl statsu` -> "statsu".
std::optional<std::string> unknown_command(const CLI::App& app, int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg.rfind('-', 0) == 0) {
            bool takes_value =
                arg == "--socket" || arg == "--apps-dir" || arg == "--socket-dir" || arg == "--bus";
            i += takes_value ? 1 : 0;
            continue;
        }
        for (const CLI::App* sub : app.get_subcommands({})) {
            if (sub->check_name(std::string(arg))) {
                return std::nullopt;
            }
        }
        return std::string(arg);
    }
    return std::nullopt;
}

int run(int argc, char** argv) {
    CLI::App app{"ondemandctl: look at and drive ondemand's apps (docs/units.md)"};
    app.require_subcommand(1);
    app.fallthrough(); // global options may follow the subcommand
    app.set_version_flag("--version", std::string("ondemandctl " ONDEMAND_VERSION));
    globals g;
    app.add_option("--socket", g.socket, "helperd's socket ($ONDEMAND_HELPERD_SOCKET)")
        ->capture_default_str();
    app.add_option("--key-file", g.key_file,
                   "helperd's key, sent in HELLO when readable ($ONDEMAND_KEY_FILE); given "
                   "here, it must be readable")
        ->capture_default_str()
        ->each([&g](const std::string&) { g.key_file_given = true; });
    app.add_option("--apps-dir", g.apps_dir, "the app files ($ONDEMAND_APPS_DIR)")
        ->capture_default_str();
    app.add_option("--socket-dir", g.socket_dir,
                   "where the apps' sockets are: DIR/APP/app.sock ($ONDEMAND_SOCKET_DIR)")
        ->capture_default_str();
    app.add_option("--bus", g.bus,
                   "systemd's bus for the units' memory and CPU: system, user or a D-Bus "
                   "address ($ONDEMAND_BUS)")
        ->capture_default_str();

    bool json = false;
    std::string status_app;
    auto* status = app.add_subcommand(
        "status", "each app's state, requests, failures, memory and CPU; APP: one in detail");
    status->add_option("APP", status_app, "show this app in detail (its last events)");
    status->add_flag("--json", json, "JSON instead of a table");
    auto* list = app.add_subcommand("list", "the app files: name, kind, unit, hosts");
    std::string start_app, stop_app;
    auto* start = app.add_subcommand("start", "start an app now and wait until it is ready");
    start->add_option("APP", start_app, "the app's name")->required();
    auto* stop = app.add_subcommand("stop", "stop an app now");
    stop->add_option("APP", stop_app, "the app's name")->required();
    std::string output, variable = "app";
    auto* gen = app.add_subcommand("gen-nginx", "write the nginx include for the app files");
    gen->add_option("-o,--output", output, "file to write (atomically); default stdout");
    gen->add_option("--variable", variable, "the map's variable: map $host $VARIABLE")
        ->capture_default_str();
    std::vector<std::string> files;
    auto* check = app.add_subcommand("check", "validate app files (default: all in --apps-dir)");
    check->add_option("FILE", files, "app files to check");
    std::string nginx_module;
    bool nginx_required = false;
    check->add_option("--nginx-module", nginx_module,
                      "the module nginx -t loads ($ONDEMAND_NGINX_MODULE, default "
                      "/usr/lib/nginx/modules/ngx_http_ondemand_module.so)");
    check->add_flag("--nginx", nginx_required,
                    "fail when nginx -t cannot run (no module, no nginx); without it, nginx -t "
                    "runs when the module is found");
    std::vector<std::string> prepare_apps;
    auto* prepare = app.add_subcommand(
        "prepare", "make or refresh KIND=oci apps' bundles ($ONDEMAND_OCI_DIR; default: all)");
    prepare->add_option("APP", prepare_apps, "the apps to prepare");

    ctl::apply_options apply_opts;
    apply_opts.unit_dir = env_or("ONDEMAND_UNIT_DIR", "/etc/systemd/system");
    apply_opts.nginx_group = env_or("ONDEMAND_NGINX_GROUP", "www-data");
    bool no_reload = false;
    auto* apply = app.add_subcommand(
        "apply", "write the app files' unit settings (USER, WORKDIR, MEMORY_MAX, CPU_WEIGHT, "
                 "NETWORK) as drop-ins, remove stale ones, reload systemd");
    apply
        ->add_option("--unit-dir", apply_opts.unit_dir,
                     "where the drop-ins go ($ONDEMAND_UNIT_DIR)")
        ->capture_default_str();
    apply
        ->add_option("--nginx-group", apply_opts.nginx_group,
                     "nginx's workers' group: the socket directory is 0750 root:GROUP "
                     "($ONDEMAND_NGINX_GROUP)")
        ->capture_default_str();
    apply->add_flag("--no-reload", no_reload, "do not reload systemd (say so instead)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (auto unknown = unknown_command(app, argc, argv)) {
            std::cerr << "ondemandctl: unknown command " << *unknown
                      << " (commands: status, list, start, stop, gen-nginx, check, apply, prepare; "
                         "--help)\n";
            return 2;
        }
        // --help and --version exit 0; any other usage error exits 2 (not CLI11's 100+ codes)
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        if (*status) {
            return cmd_status(g, json, status_app);
        }
        if (*list) {
            return cmd_list(g);
        }
        if (*start) {
            return cmd_start(g, start_app);
        }
        if (*stop) {
            return cmd_stop(g, stop_app);
        }
        if (*gen) {
            if (!proto::valid_app_name(variable) ||
                variable.find_first_of(".-") != std::string::npos) {
                std::cerr << "ondemandctl: --variable: letters, digits and _ only\n";
                return 2;
            }
            return cmd_gen_nginx(g, output, variable);
        }
        if (*check) {
            return cmd_check(g, files, nginx_module, nginx_required);
        }
        if (*apply) {
            apply_opts.apps_dir = g.apps_dir;
            apply_opts.socket_dir = g.socket_dir;
            apply_opts.bus = g.bus;
            apply_opts.reload = !no_reload;
            return ctl::cmd_apply(apply_opts);
        }
        if (*prepare) {
            return ctl::prepare_apps(g.apps_dir, prepare_apps, g.oci(), std::cout, std::cerr);
        }
    } catch (const std::exception& e) {
        std::cerr << "ondemandctl: " << e.what() << "\n";
        return 1;
    }
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    // Nothing may escape main: CLI11 and the standard library can throw (e.g. bad_alloc).
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fputs("ondemandctl: ", stderr);
        std::fputs(e.what(), stderr);
        std::fputs("\n", stderr);
    } catch (...) {
        std::fputs("ondemandctl: unexpected error\n", stderr);
    }
    return 1;
}
