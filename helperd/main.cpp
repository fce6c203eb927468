// ondemand-helperd: see docs/helperd.md.
#include "listener.h"
#include "log.h"
#include "options.h"
#include "sdbus.h"
#include "server.h"
#include "systemd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include <csignal>
#include <exception>
#include <unistd.h>

namespace {

namespace asio = boost::asio;
using namespace ondemand::helperd;

int run(const options& opts) {
    asio::io_context io;
    bus_driver bus(io, open_bus(opts.bus));
    systemd_manager systemd(bus, opts.bus.peer_to_peer);
    systemd.subscribe();

    listen_socket listener = open_listen_socket(opts.socket, opts.socket_mode);
    log(log_level::info, "listening on {} ({})",
        listener.activated ? std::string("the socket passed by systemd") : opts.socket,
        listener.activated ? "socket activation" : fmt::format("mode {:04o}", opts.socket_mode));

    server service(io,
                   access_rules{unit_allowlist(opts.allow_units),
                                peer_policy(opts.allow_uids, opts.allow_gids)},
                   systemd);
    service.serve(listener.fd);

    int exit_code = 0;
    bool stopping = false;
    auto stop = [&](int code) {
        if (stopping) {
            return;
        }
        stopping = true;
        exit_code = code;
        sd_notify(0, "STOPPING=1");
        service.shutdown([&io] { io.stop(); });
    };
    bus.on_failure = [&](const std::string& why) {
        log(log_level::error, "lost the connection to systemd: {}", why);
        service.bus_lost(why);
        stop(1);
    };

    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](boost::system::error_code ec, int sig) {
        if (!ec) {
            log(log_level::info, "received {}, shutting down",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
            stop(0);
        }
    });

    sd_notify(0, "READY=1\nSTATUS=serving");
    log(log_level::info, "ready");
    io.run();
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
    set_log_level(parsed.opts->level);
    init_log_target();
    try {
        return run(*parsed.opts);
    } catch (const std::exception& e) {
        log(log_level::error, "{}", e.what());
        return 1;
    }
}
