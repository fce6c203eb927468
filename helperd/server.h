// server: helperd's client side. Accepts nginx workers on the listening socket, checks their
// credentials and the unit allowlist, parses and dispatches their lines (HELLO, USE and STATUS
// it serves itself; START/WAIT/STOP/FREEZE go to the app_driver), writes the driver's answers
// to the clients, and shuts down gracefully. Single-threaded: everything runs on one io_context.
// It must not call the unit_manager (systemd) itself: every unit call goes through app_driver.
#ifndef ONDEMAND_HELPERD_SERVER_H
#define ONDEMAND_HELPERD_SERVER_H

#include "app_core.h"
#include "app_driver.h"
#include "auth.h"
#include "client.h"
#include "guard.h"
#include "log.h"
#include "memory.h"
#include "ondemand_protocol.h"
#include "policy.h"
#include "registry.h"
#include "systemd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::helperd {

struct access_rules {
    unit_allowlist units;
    peer_policy peers;
    resource_limits limits;
    // The key HELLO must carry as a connection's first line; none: HELLO is optional.
    shared_key key;
    // The apps helperd serves (apps_dir); null: it trusts its clients' app, unit, socket,
    // ready mode and timeout (docs/helperd.md, "App registry").
    std::shared_ptr<const app_registry> apps;
};

class server {
  public:
    server(boost::asio::io_context& io, access_rules rules, unit_manager& units);
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
    std::size_t app_count(app_phase phase) const { return driver_.count(phase); }

  private:
    // The driver's replies, written to the clients.
    class client_replies final : public reply_sink {
      public:
        explicit client_replies(server& owner) : owner_(owner) {}
        void answer(const std::vector<waiter>& waiters, proto::verb verb,
                    std::string_view app) override;
        void answer_failed(const std::vector<waiter>& waiters, std::string_view app,
                           const failure_reason& why) override;
        void broadcast(proto::verb verb, std::string_view app,
                       const std::vector<waiter>& except) override;

      private:
        server& owner_;
    };

    void accept();
    // EMFILE, ENFILE and the like: no accept for a while (as nginx does), clients still served.
    void pause_accept(const boost::system::error_code& ec);
    // A request names an app helperd has no record of while max_apps records exist: drops
    // idle records, else refuses the line (ERROR) and returns true.
    bool refuse_new_app(client_connection& client, const proto::message& m);
    void on_accepted(boost::asio::local::stream_protocol::socket socket);
    void on_line(client_connection& client, std::string_view line);
    void on_client_closed(client_id id);

    void handle_start(client_connection& client, const proto::message& m);
    void handle_stop(client_connection& client, const proto::message& m);
    void handle_freeze(client_connection& client, const proto::message& m);
    void handle_hello(client_connection& client, const proto::message& m);
    // With a key: the first line must be HELLO with the right key. Refuses (ERROR, close) and
    // returns true otherwise. `r` is the line's parse.
    bool refuse_unauthenticated(client_connection& client, const proto::parse_result& r);
    // ERROR `why`, logged with the peer's pid and uid, then the connection is closed.
    void refuse_and_close(client_connection& client, std::string_view why);
    void handle_status(client_connection& client);
    // SUBSCRIBE memory; the sampler's figures go to every subscribed connection (MEMORY).
    void handle_subscribe(client_connection& client);
    void push_memory(const std::string& app, std::uint64_t bytes);
    void send_status_page(client_connection& client, const std::string& after);
    // The unit is outside the allowlist: answers FAILED not-allowed and returns true.
    bool refuse_unit(client_connection& client, const proto::message& m);
    // Another app holds the unit (one unit, one app): answers FAILED not-allowed, returns true.
    bool refuse_held_unit(client_connection& client, const proto::message& m);
    // Under a registry: an unknown app, or a START/STOP/FREEZE that disagrees with its app
    // file. Answers FAILED not-allowed (ERROR for USE) and returns true; no record is made.
    bool refuse_unregistered(client_connection& client, const proto::message& m);
    // Another nginx holds a use lease: answers FAILED in-use and returns true.
    bool refuse_in_use(client_connection& client, const proto::message& m);
    // More requests awaiting an answer than max_waits_per_client: answers FAILED and returns
    // true.
    bool refuse_too_many_waits(client_connection& client, const proto::message& m);
    void refuse_line(client_connection& client, std::string_view why);
    // Whether a refusal of this client's may be logged now (its log_limiter); see log.h.
    static bool log_refusal(client_connection& client, std::uint64_t& held);

    // An answer to a request the client had waiting (it counts against max_waits_per_client).
    void answer_waiter(const waiter& w, const proto::message& m);
    void send(client_connection& client, const proto::message& m);

    boost::asio::io_context& io_;
    access_rules rules_;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
    std::map<client_id, std::shared_ptr<client_connection>> clients_;
    std::map<uid_t, std::size_t> clients_per_uid_;
    log_limiter refused_clients_log_; // refusals at accept, from every peer together
    instance_registry instances_;     // HELLO names and who holds them
    steady_time next_idle_scan_{};    // see refuse_new_app
    boost::asio::steady_timer accept_pause_;
    client_id next_client_ = 1;
    client_replies replies_{*this};
    app_driver driver_;
    memory_sampler memory_;
    bool shutting_down_ = false;
    std::function<void()> shutdown_done_;
    boost::asio::steady_timer shutdown_timer_;
    callback_guard guard_;
};

} // namespace ondemand::helperd

#endif
