// Event-driven readiness detection for one start attempt: waits until the app's unix socket
// accepts a connection (`connect`) and, for `http:/path`, answers a GET with 2xx/3xx.
//
// The socket's appearance is watched with inotify on its directory, or on the nearest existing
// ancestor while the directory does not exist yet (the watch moves down as directories appear;
// helperd never creates them). The inotify instance is helperd's shared inotify_hub: a probe
// only adds and removes a watch, so neither its success nor its cancellation closes an inotify
// descriptor (which would wait for a kernel grace period). A socket file that refuses connections
// (bound, not listening yet) is retried on a short capped backoff (1, 2, 4, ... 32 ms); a
// non-2xx/3xx HTTP answer is retried on a backoff capped at 250 ms. There is no fixed sleep and no
// polling otherwise.
//
// It knows no app, attempt or unit: it may include inotify_hub.h and log.h only, never
// app_core.h, app_driver.h, systemd.h or server.h. It reports through on_ready only.
#ifndef ONDEMAND_HELPERD_READINESS_H
#define ONDEMAND_HELPERD_READINESS_H

#include "inotify_hub.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace ondemand::helperd {

class readiness_probe : public std::enable_shared_from_this<readiness_probe> {
  public:
    // `http_path` empty: connect mode. `on_ready` is called once, from the io_context.
    static std::shared_ptr<readiness_probe> create(boost::asio::io_context& io,
                                                   std::shared_ptr<inotify_hub> inotify,
                                                   std::string socket_path, std::string http_path,
                                                   std::function<void()> on_ready);
    readiness_probe(const readiness_probe&) = delete;
    readiness_probe& operator=(const readiness_probe&) = delete;
    ~readiness_probe() = default;

    void start();
    // Cancels everything; on_ready is not called after this.
    void stop();
    // What the last attempt saw ("no socket file yet", "connection refused", "HTTP 503"...),
    // for the timeout message.
    const std::string& last_observation() const { return observation_; }

    // Constructed through create() only (it must be owned by a shared_ptr).
    struct private_tag {};
    readiness_probe(private_tag, boost::asio::io_context& io, std::shared_ptr<inotify_hub> inotify,
                    std::string socket_path, std::string http_path, std::function<void()> on_ready);

  private:
    void watch();
    void on_inotify();
    void attempt();
    void retry_later(std::chrono::milliseconds cap);
    void http_check(boost::asio::local::stream_protocol::socket socket);
    void succeed();

    boost::asio::io_context& io_;
    std::string socket_path_;
    std::string http_path_;
    std::function<void()> on_ready_;
    std::shared_ptr<inotify_hub> inotify_;
    inotify_hub::subscription watch_;
    std::string watched_dir_;
    boost::asio::steady_timer retry_timer_;
    bool retry_pending_ = false;
    std::chrono::milliseconds backoff_{0};
    bool http_in_flight_ = false;
    bool done_ = false;
    std::string observation_ = "not checked yet";
};

} // namespace ondemand::helperd

#endif
