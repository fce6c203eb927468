// helperd's core service: accepts nginx workers on the listening socket, checks their
// credentials, serves START/WAIT/STOP/STATUS, drives systemd through systemd_manager and
// readiness_probe, and answers every waiter. Single-threaded: everything runs on one io_context.
#ifndef ONDEMAND_HELPERD_SERVER_H
#define ONDEMAND_HELPERD_SERVER_H

#include "app_core.h"
#include "client.h"
#include "inotify_hub.h"
#include "ondemand_protocol.h"
#include "policy.h"
#include "readiness.h"
#include "systemd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ondemand::helperd {

struct access_rules {
    unit_allowlist units;
    peer_policy peers;
};

class server {
  public:
    server(boost::asio::io_context& io, access_rules rules, systemd_manager& systemd);
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    ~server();

    // Serves clients on an already listening unix stream socket (takes ownership of fd).
    void serve(int listen_fd);

    // New allowlist and peer rules (SIGHUP); connected clients stay connected.
    void set_rules(access_rules rules);

    // Graceful stop: no new clients, pending starts answered FAILED shutting-down, replies
    // flushed. `done` is called when every client is gone (or after a short limit).
    void shutdown(std::function<void()> done);

    // The bus failed: starts cannot finish. Answers every start waiter FAILED.
    void bus_lost(const std::string& why);

    // For STATUS= notifications.
    std::size_t client_count() const { return clients_.size(); }
    std::size_t app_count(app_phase phase) const;

  private:
    struct app_runtime {
        app_runtime(std::string name, boost::asio::io_context& io)
            : core(std::move(name)), deadline(io) {}
        app_core core;
        std::string object_path;
        std::string job; // the job of the current attempt, until JobRemoved
        bool job_done = false;
        bool explaining = false; // reading the unit's state to explain a failure
        // The running stop is of an app the clients believe ready (or frozen): when it is done,
        // the clients that did not ask for it get DOWN.
        bool announce_stop = false;
        // For STATUS: the last request line about the app, StartUnit calls, failed starts.
        std::chrono::system_clock::time_point last_request{};
        std::uint64_t starts = 0;
        std::uint64_t failures = 0;
        std::shared_ptr<readiness_probe> probe;
        boost::asio::steady_timer deadline;
        steady_time began{};
    };

    void accept();
    void on_accepted(boost::asio::local::stream_protocol::socket socket);
    void on_line(client_connection& client, std::string_view line);
    void on_client_closed(client_id id);

    void handle_start(client_connection& client, const proto::message& m);
    void handle_wait(client_connection& client, const proto::message& m);
    void handle_stop(client_connection& client, const proto::message& m);
    bool refuse_in_use(client_connection& client, app_runtime& a, const proto::message& m,
                       std::string_view what);
    void handle_hello(client_connection& client, const proto::message& m);
    void handle_freeze(client_connection& client, const proto::message& m);
    void handle_status(client_connection& client);

    app_runtime& app(std::string_view name);
    void track_unit(app_runtime& a);
    void end_attempt(app_runtime& a);
    // `how`: start_unit, check_active or thaw_unit.
    void begin_start(app_runtime& a, app_core::start_decision how);
    void call_start_unit(app_runtime& a, std::uint64_t attempt);
    void start_job_finished(app_runtime& a, std::string_view result);
    void begin_readiness(app_runtime& a, std::uint64_t attempt);
    void explain_failure(app_runtime& a, std::uint64_t attempt, std::string prefix);
    void start_succeeded(app_runtime& a, std::uint64_t attempt);
    void start_failed(app_runtime& a, std::uint64_t attempt, failure_reason reason);
    bool current(const app_runtime& a, std::uint64_t attempt, app_phase phase) const;
    void begin_stop(app_runtime& a);
    void stop_finished(app_runtime& a, std::uint64_t attempt, const std::string& error);
    void begin_freeze(app_runtime& a);
    void freeze_finished(app_runtime& a, std::uint64_t attempt, const std::string& error);
    void remember_job(app_runtime& a, const std::string& job);

    void on_job_removed(std::string_view job, std::string_view unit, std::string_view result);
    void on_active_state(std::string_view path, std::string_view state);
    void active_state_changed(app_runtime& a, std::string_view state);

    void arm_pending_sweep(steady_time when);
    void sweep_pending();

    void send(client_id client, const proto::message& m);
    void send(client_connection& client, const proto::message& m);
    void answer(const std::vector<waiter>& waiters, proto::verb verb, std::string_view app);
    void answer_failed(const std::vector<waiter>& waiters, std::string_view app,
                       const failure_reason& why);
    void broadcast(const proto::message& m, const std::vector<waiter>& except = {});

    boost::asio::io_context& io_;
    access_rules rules_;
    systemd_manager& systemd_;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
    // One inotify instance for every readiness probe (see inotify_hub.h).
    std::shared_ptr<inotify_hub> inotify_;
    std::map<client_id, std::shared_ptr<client_connection>> clients_;
    client_id next_client_ = 1;
    std::map<std::string, std::unique_ptr<app_runtime>, std::less<>> apps_;
    std::unordered_map<std::string, std::string> jobs_; // job path -> app
    // JobRemoved of jobs not (yet) known: systemd could in principle signal a job's end before
    // its StartUnit/StopUnit reply is processed. A short FIFO of the latest ones.
    std::deque<std::pair<std::string, std::string>> early_jobs_;              // job path, result
    std::unordered_map<std::string, std::vector<std::string>> units_by_path_; // -> apps
    boost::asio::steady_timer pending_timer_;
    std::optional<steady_time> pending_expiry_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
    boost::asio::steady_timer shutdown_timer_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ondemand::helperd

#endif
