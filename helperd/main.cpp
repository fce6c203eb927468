// ondemand-helperd's main: parses the options and the config file, opens the listening socket
// and the bus, wires systemd_manager into the server, and runs the loop with the signals
// (SIGTERM/SIGINT stop, SIGHUP reload) and the sd_notify status and watchdog. The only place
// that creates the systemd_manager and the server; no other file includes it.
// See docs/helperd.md.
#include "auth.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "options.h"
#include "registry.h"
#include "sdbus.h"
#include "server.h"
#include "systemd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <unistd.h>

namespace {

namespace asio = boost::asio;
using namespace ondemand::helperd;
using namespace std::chrono_literals;

// The settings in force: the config file (if any) under the flags. Prints every problem of the
// file and returns nothing when there is one.
std::optional<options> effective_options(const options& command_line) {
    if (command_line.config_path.empty()) {
        return command_line;
    }
    config_result file = load_config(command_line.config_path);
    for (const std::string& e : file.errors) {
        log(log_level::error, "{}", e); // FILE:LINE: KEY: message
    }
    if (!file.ok()) {
        return std::nullopt;
    }
    return merge_config(command_line, file.values);
}

// The key of --key-file / key_file (none when unset). Logs the problem and returns nothing
// when the file cannot be used.
std::optional<shared_key> load_key(const options& o) {
    if (o.key_file.empty()) {
        return shared_key{};
    }
    try {
        return shared_key(read_key_file(o.key_file));
    } catch (const std::exception& e) {
        log(log_level::error, "{}", e.what());
        return std::nullopt;
    }
}

// The app registry of the settings (null without apps_dir: helperd trusts its clients), its
// problems logged: an app file with errors is left out, so its app is refused.
std::shared_ptr<const app_registry> registry_of(const options& o) {
    if (o.apps_dir.empty()) {
        log(log_level::warning,
            "no apps_dir: helperd trusts its clients' app names, units, sockets, ready modes and "
            "start timeouts (set apps_dir to serve only the apps of their app files)");
        return nullptr;
    }
    std::string socket_dir = o.app_socket_dir.empty()
                                 ? default_app_socket_dir(o.bus.type == bus_address::kind::user)
                                 : o.app_socket_dir;
    registry_load r = load_registry(o.apps_dir, socket_dir);
    for (const std::string& problem : r.problems) {
        log(log_level::error, "app registry: {}", problem);
    }
    if (r.read && !r.problems.empty()) {
        log(log_level::error, "app registry: an app whose file has errors is left out (refused)");
    }
    log(log_level::info, "app registry: {} app(s) from {}/*.conf, sockets in {}", r.registry.size(),
        o.apps_dir, socket_dir);
    return std::make_shared<const app_registry>(std::move(r.registry));
}

// `self`: the unit helperd runs in, never to be stopped or frozen by a client.
access_rules rules_of(const options& o, const std::string& self, shared_key key) {
    unit_allowlist units(o.allow_units);
    if (!self.empty()) {
        units.exclude(self);
    }
    resource_limits limits;
    limits.max_connections = o.max_connections;
    limits.max_connections_per_uid = o.max_connections_per_uid;
    limits.max_apps = o.max_apps;
    limits.line_timeout = std::chrono::milliseconds(o.line_timeout_ms);
    limits.max_waits_per_client = o.max_waits_per_client;
    limits.stop_timeout = std::chrono::milliseconds(o.stop_timeout_ms);
    return access_rules{std::move(units), peer_policy(o.allow_uids, o.allow_gids), limits,
                        std::move(key), registry_of(o)};
}

// STATUS= for systemctl status: refreshed when it changes, checked once a second.
class status_reporter {
  public:
    status_reporter(asio::io_context& io, const server& service) : timer_(io), service_(service) {}

    void start() {
        report();
        timer_.expires_after(1s);
        timer_.async_wait([this](boost::system::error_code ec) {
            if (!ec) {
                start();
            }
        });
    }
    void stop() { timer_.cancel(); }

  private:
    void report() {
        std::string text = fmt::format(
            "{} clients; apps: {} ready, {} starting, {} frozen, {} failed",
            service_.client_count(), service_.app_count(app_phase::ready),
            service_.app_count(app_phase::starting), service_.app_count(app_phase::frozen),
            service_.app_count(app_phase::failed));
        if (text != last_) {
            last_ = text;
            sd_notify(0, fmt::format("STATUS={}", text).c_str());
        }
    }

    asio::steady_timer timer_;
    const server& service_;
    std::string last_;
};

// WATCHDOG=1 at half the interval systemd asks for (WatchdogSec=), from the event loop: a
// stuck loop misses it and systemd restarts helperd.
class watchdog {
  public:
    explicit watchdog(asio::io_context& io) : timer_(io) {}

    void start() {
        std::uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
            return;
        }
        interval_ = std::chrono::microseconds(usec / 2);
        log(log_level::info, "watchdog: WATCHDOG=1 every {} ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(interval_).count());
        tick();
    }
    void stop() { timer_.cancel(); }

  private:
    void tick() {
        sd_notify(0, "WATCHDOG=1");
        timer_.expires_after(interval_);
        timer_.async_wait([this](boost::system::error_code ec) {
            if (!ec) {
                tick();
            }
        });
    }

    asio::steady_timer timer_;
    std::chrono::microseconds interval_{0};
};

int run(const options& command_line, options opts, shared_key key) {
    asio::io_context io;
    bus_driver bus(io, open_bus(opts.bus));
    systemd_manager systemd(bus, opts.bus.peer_to_peer);
    systemd.subscribe();
    const std::string self = systemd.unit_of_pid(::getpid());
    if (!self.empty()) {
        log(log_level::info, "running in {}: clients may not stop it", self);
    }

    listen_socket listener = open_listen_socket(opts.socket, opts.socket_mode);
    log(log_level::info, "listening on {} ({})",
        listener.activated ? std::string("the socket passed by systemd") : opts.socket,
        listener.activated ? "socket activation" : fmt::format("mode {:04o}", opts.socket_mode));

    if (key.required()) {
        log(log_level::info, "clients must authenticate: HELLO with the key of {}", opts.key_file);
    }
    server service(io, rules_of(opts, self, std::move(key)), systemd);
    service.serve(listener.fd);
    status_reporter status(io, service);
    watchdog dog(io);

    int exit_code = 0;
    bool stopping = false;
    auto stop = [&](int code) {
        if (stopping) {
            return;
        }
        stopping = true;
        exit_code = code;
        sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
        status.stop();
        service.shutdown([&io] { io.stop(); });
    };
    bus.on_failure = [&](const std::string& why) {
        log(log_level::error, "lost the connection to systemd: {}", why);
        service.bus_lost(why);
        stop(1);
    };

    asio::signal_set terminate(io, SIGTERM, SIGINT);
    terminate.async_wait([&](boost::system::error_code ec, int sig) {
        if (!ec) {
            log(log_level::info, "received {}, shutting down",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
            stop(0);
        }
    });

    // SIGHUP: re-read the config file; the allowlist, peer rules and log level change at once.
    asio::signal_set hangup(io, SIGHUP);
    std::function<void()> wait_hangup = [&] {
        hangup.async_wait([&](boost::system::error_code ec, int) {
            if (ec) {
                return;
            }
            sd_notify(0, "RELOADING=1");
            log(log_level::info, "received SIGHUP, reloading {}",
                command_line.config_path.empty() ? std::string("(no config file)")
                                                 : command_line.config_path);
            std::optional<options> fresh = effective_options(command_line);
            std::optional<shared_key> fresh_key;
            if (fresh) {
                fresh_key = load_key(*fresh);
            }
            if (fresh && fresh_key) {
                if (fresh->socket != opts.socket || fresh->bus.type != opts.bus.type ||
                    fresh->bus.address != opts.bus.address ||
                    fresh->socket_mode != opts.socket_mode) {
                    log(log_level::warning,
                        "socket, socket_mode and bus changes take effect at the next restart");
                }
                set_log_level(fresh->level);
                service.set_rules(rules_of(*fresh, self, std::move(*fresh_key)));
                opts.allow_units = fresh->allow_units;
                opts.allow_uids = fresh->allow_uids;
                opts.allow_gids = fresh->allow_gids;
                opts.key_file = fresh->key_file;
                log(log_level::info, "reloaded: {} unit glob(s), {} uid(s), {} gid(s), {}",
                    unit_allowlist(opts.allow_units).globs().size(), opts.allow_uids.size(),
                    opts.allow_gids.size(),
                    opts.key_file.empty() ? std::string("no key")
                                          : fmt::format("key of {}", opts.key_file));
            } else {
                log(log_level::error, "reload failed: keeping the settings in force");
            }
            sd_notify(0, "READY=1");
            wait_hangup();
        });
    };
    wait_hangup();

    sd_notify(0, "READY=1");
    status.start();
    dog.start();
    log(log_level::info, "ready");
    io.run();
    dog.stop();
    if (!listener.activated) {
        ::unlink(opts.socket.c_str());
    }
    log(log_level::info, "exiting with status {}", exit_code);
    return exit_code;
}

} // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    parsed_options parsed = parse_command_line(argc, argv);
    if (!parsed.opts) {
        return parsed.exit_code;
    }
    const options& command_line = *parsed.opts;
    set_log_level(command_line.level);
    init_log_target();
    std::optional<options> opts = effective_options(command_line);
    std::optional<shared_key> key;
    if (opts) {
        key = load_key(*opts);
    }
    if (command_line.check_config) {
        if (!opts || !key) {
            return 1;
        }
        if (!opts->apps_dir.empty()) {
            // The app files' problems are reported (those apps would be refused), not fatal.
            registry_of(*opts);
        }
        std::printf("%s: OK\n",
                    command_line.config_path.empty() ? "flags" : command_line.config_path.c_str());
        return 0;
    }
    if (!opts || !key) {
        return 1;
    }
    set_log_level(opts->level);
    try {
        return run(command_line, *opts, std::move(*key));
    } catch (const std::exception& e) {
        log(log_level::error, "{}", e.what());
        return 1;
    }
}
