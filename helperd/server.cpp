// server: helperd's client side (see server.h): connections, credentials, the allowlist and
// lease checks, line dispatch, HELLO/USE/STATUS, and writing answers. The unit work is
// app_driver's: this file must not call the unit_manager, nor keep per-app attempt state.
#include "server.h"

#include "log.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace ondemand::helperd {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto shutdown_flush_limit = 2s;
// STATUS lines written at once (about 100 bytes each).
constexpr std::size_t status_page_apps = 256;
// Out of descriptors (or memory) at accept: wait this long before accepting again, as nginx
// does, rather than failing in a loop.
constexpr auto accept_pause = 500ms;

bool out_of_resources(const boost::system::error_code& ec) {
    return ec == boost::system::errc::too_many_files_open ||
           ec == boost::system::errc::too_many_files_open_in_system ||
           ec == boost::system::errc::no_buffer_space ||
           ec == boost::system::errc::not_enough_memory;
}

proto::message make(proto::verb verb, std::string_view app, std::uint64_t gen = 0,
                    std::string_view text = {}) {
    proto::message m;
    m.kind = verb;
    m.app = app;
    m.gen = gen;
    m.text = text;
    return m;
}

proto::message failed(std::string_view app, std::uint64_t gen, const failure_reason& why) {
    proto::message m = make(proto::verb::failed, app, gen, why.detail);
    m.reason = why.code;
    return m;
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

} // namespace

server::server(asio::io_context& io, access_rules rules, unit_manager& units)
    : io_(io), rules_(std::move(rules)), accept_pause_(io), driver_(io, units, replies_),
      memory_(
          io, units, [this] { return driver_.running_units(); },
          [this](const std::string& app, std::uint64_t bytes) { push_memory(app, bytes); }),
      shutdown_timer_(io) {
    driver_.set_stop_timeout(rules_.limits.stop_timeout);
}

server::~server() {
    guard_.revoke();
    for (auto& [id, client] : clients_) {
        (void)id;
        client->close();
    }
}

void server::serve(int listen_fd) {
    acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
    acceptor_->assign(asio::local::stream_protocol(), listen_fd);
    accept();
}

void server::set_rules(access_rules rules) {
    rules_ = std::move(rules);
    driver_.set_stop_timeout(rules_.limits.stop_timeout);
}

// ---- clients ----------------------------------------------------------------------------------

void server::accept() {
    acceptor_->async_accept(guard_.wrap(
        [this](boost::system::error_code ec, asio::local::stream_protocol::socket socket) {
            if (shutting_down_) {
                return;
            }
            if (ec) {
                if (ec == asio::error::operation_aborted) {
                    return;
                }
                if (out_of_resources(ec)) {
                    pause_accept(ec);
                    return;
                }
                log(log_level::error, "accept: {}", ec.message());
            } else {
                on_accepted(std::move(socket));
            }
            accept();
        }));
}

void server::pause_accept(const boost::system::error_code& ec) {
    // Keep serving the clients we have; try again after the pause (one log line per pause).
    log(log_level::warning, "accept: {}; not accepting for {} ms ({} clients)", ec.message(),
        std::chrono::milliseconds(accept_pause).count(), clients_.size());
    accept_pause_.expires_after(accept_pause);
    accept_pause_.async_wait(guard_.wrap([this](boost::system::error_code wait_ec) {
        if (!wait_ec && !shutting_down_) {
            accept();
        }
    }));
}

void server::on_accepted(asio::local::stream_protocol::socket socket) {
    peer_credentials peer = read_peer_credentials(socket.native_handle());
    client_id id = next_client_++;
    auto client = std::make_shared<client_connection>(id, std::move(socket), peer);
    std::uint64_t held = 0;
    if (!rules_.peers.allows(peer)) {
        if (refused_clients_log_.allow(std::chrono::steady_clock::now(), held)) {
            log(log_level::warning, "refused client {} (pid {} uid {} gid {}): peer not allowed{}",
                id, peer.pid, peer.uid, peer.gid, held_back_note(held));
        }
        client->send("ERROR peer not allowed\n");
        client->close_after_flush();
        return;
    }
    const resource_limits& limits = rules_.limits;
    std::size_t& of_uid = clients_per_uid_[peer.uid];
    const char* cap = nullptr;
    std::size_t cap_value = 0;
    if (clients_.size() >= limits.max_connections) {
        cap = "max_connections";
        cap_value = limits.max_connections;
    } else if (of_uid >= limits.max_connections_per_uid) {
        cap = "max_connections_per_uid";
        cap_value = limits.max_connections_per_uid;
    }
    if (cap != nullptr) {
        if (of_uid == 0) {
            clients_per_uid_.erase(peer.uid);
        }
        if (refused_clients_log_.allow(std::chrono::steady_clock::now(), held)) {
            log(log_level::warning, "refused client {} (pid {} uid {}): connection limit {}={}{}",
                id, peer.pid, peer.uid, cap, cap_value, held_back_note(held));
        }
        client->send(fmt::format("ERROR connection limit: {}={}\n", cap, cap_value));
        client->close_after_flush();
        return;
    }
    ++of_uid;
    log(log_level::info, "client {} connected (pid {} uid {} gid {})", id, peer.pid, peer.uid,
        peer.gid);
    client->set_line_timeout(limits.line_timeout);
    clients_.emplace(id, client);
    client->start([this](client_connection& c, std::string_view line) { on_line(c, line); },
                  guard_.wrap([this](client_id gone) { on_client_closed(gone); }));
}

void server::on_client_closed(client_id id) {
    std::string owner;
    std::uint64_t held = 0;
    if (auto it = clients_.find(id); it != clients_.end()) {
        owner = it->second->lease_owner();
        held = it->second->refusal_log().held_back();
        uid_t uid = it->second->peer().uid;
        if (auto n = clients_per_uid_.find(uid); n != clients_per_uid_.end() && --n->second == 0) {
            clients_per_uid_.erase(n);
        }
        clients_.erase(it);
    }
    instances_.release(id);
    // An nginx's leases last while any of its workers is connected. USE lines sent before its
    // HELLO are the connection's own ("#id").
    bool owner_left = std::none_of(clients_.begin(), clients_.end(), [&owner](const auto& c) {
        return c.second->lease_owner() == owner;
    });
    std::vector<std::string> owners{"#" + std::to_string(id)};
    if (owner_left) {
        owners.push_back(owner);
    }
    driver_.forget_client(id, owners);
    log(log_level::info, "client {} disconnected{}", id, held_back_note(held));
    if (shutting_down_ && clients_.empty() && shutdown_done_) {
        shutdown_timer_.cancel();
        auto done = std::move(shutdown_done_);
        shutdown_done_ = nullptr;
        done();
    }
}

bool server::log_refusal(client_connection& client, std::uint64_t& held) {
    return client.refusal_log().allow(std::chrono::steady_clock::now(), held);
}

void server::refuse_line(client_connection& client, std::string_view why) {
    if (std::uint64_t held = 0; log_refusal(client, held)) {
        log(log_level::warning, "client {} (pid {} uid {}): refused line: {}{}", client.id(),
            client.peer().pid, client.peer().uid, why, held_back_note(held));
    }
    send(client, make(proto::verb::error, {}, 0, why));
}

// One connection may not keep more than max_waits_per_client requests waiting: each is a
// waiter in some app's lists until it is answered (a WAIT for a start that never comes stays
// a minute), so an unbounded flood would grow helperd without end.
bool server::refuse_too_many_waits(client_connection& client, const proto::message& m) {
    if (!proto::awaits_outcome(m.kind)) {
        return false;
    }
    std::size_t cap = rules_.limits.max_waits_per_client;
    if (client.waits() < cap) {
        return false;
    }
    std::string why = fmt::format("wait limit: max_waits_per_client={}", cap);
    if (std::uint64_t held = 0; log_refusal(client, held)) {
        log({m.app, m.unit}, log_level::warning, "client {} (pid {} uid {}): {} {} refused: {}{}",
            client.id(), client.peer().pid, client.peer().uid, proto::verb_name(m.kind), m.app, why,
            held_back_note(held));
    }
    send(client, failed(m.app, m.gen, {proto::failure::other, why}));
    return true;
}

void server::refuse_and_close(client_connection& client, std::string_view why) {
    log(log_level::warning, "client {} (pid {} uid {}): refused and closed: {}", client.id(),
        client.peer().pid, client.peer().uid, why);
    send(client, make(proto::verb::error, {}, 0, why));
    client.close_after_flush();
}

bool server::refuse_unauthenticated(client_connection& client, const proto::parse_result& r) {
    if (!rules_.key.required() || client.has_instance()) {
        return false;
    }
    if (!r.ok || r.msg.kind != proto::verb::hello || r.msg.key.empty()) {
        refuse_and_close(client, "authentication required");
        return true;
    }
    if (!rules_.key.matches(r.msg.key)) {
        refuse_and_close(client, "wrong key");
        return true;
    }
    return false;
}

void server::on_line(client_connection& client, std::string_view line) {
    proto::parse_result r = proto::parse(line);
    if (refuse_unauthenticated(client, r)) {
        return;
    }
    if (!r.ok) {
        refuse_line(client, r.error);
        return;
    }
    const proto::message& m = r.msg;
    if (m.kind == proto::verb::hello && !m.key.empty()) {
        // The key is never logged.
        log(log_level::debug, "client {}: HELLO {} key=(hidden)", client.id(), m.instance);
    } else {
        log(log_level::debug, "client {}: {}", client.id(), line);
    }
    if (shutting_down_) {
        if (m.kind == proto::verb::start || m.kind == proto::verb::wait) {
            send(client, failed(m.app, m.gen, {proto::failure::shutting_down, {}}));
        }
        return;
    }
    waiter w{client.id(), m.gen};
    if (refuse_too_many_waits(client, m) || refuse_unregistered(client, m) ||
        refuse_new_app(client, m)) {
        return;
    }
    switch (m.kind) {
    case proto::verb::hello:
        handle_hello(client, m);
        break;
    case proto::verb::start:
        handle_start(client, m);
        break;
    case proto::verb::wait:
        client.wait_added();
        driver_.wait(w, m.app);
        break;
    case proto::verb::stop:
        handle_stop(client, m);
        break;
    case proto::verb::freeze:
        handle_freeze(client, m);
        break;
    case proto::verb::use:
        driver_.core(m.app).on_use(client.lease_owner(), std::chrono::steady_clock::now(),
                                   saturated_ms(m.lease_ms, proto::max_lease_ms));
        break;
    case proto::verb::status:
        handle_status(client);
        break;
    case proto::verb::subscribe:
        handle_subscribe(client);
        break;
    default:
        refuse_line(client, fmt::format("unexpected verb {}", proto::verb_name(m.kind)));
        break;
    }
    if (m.kind == proto::verb::start || m.kind == proto::verb::wait || m.kind == proto::verb::use) {
        driver_.touch(m.app); // STATUS' `last`: requests only, not an idle STOP or FREEZE
    }
}

bool server::refuse_new_app(client_connection& client, const proto::message& m) {
    if (!proto::names_app(m.kind)) {
        return false;
    }
    std::size_t cap = rules_.limits.max_apps;
    if (driver_.has(m.app) || driver_.size() < cap) {
        return false;
    }
    // A scan costs O(max_apps): after one that freed little, refuse for a while without one.
    auto now = std::chrono::steady_clock::now();
    if (now >= next_idle_scan_) {
        std::size_t dropped = driver_.drop_idle();
        if (dropped > 0) {
            log(log_level::warning, "app limit max_apps={} reached: dropped {} idle app records",
                cap, dropped);
        }
        if (dropped < cap / 16 + 1) {
            next_idle_scan_ = now + 100ms;
        }
    }
    if (driver_.size() < cap) {
        return false;
    }
    refuse_line(client, fmt::format("app limit: max_apps={}", cap));
    return true;
}

void server::handle_subscribe(client_connection& client) {
    client.subscribe_memory();
    memory_.enable();
}

void server::push_memory(const std::string& app, std::uint64_t bytes) {
    proto::message m;
    m.kind = proto::verb::memory;
    m.app = app;
    m.memory_bytes = std::min(bytes, proto::max_memory_bytes);
    // A send can drop a client that does not read (and erase it from clients_): walk a copy.
    std::vector<std::shared_ptr<client_connection>> subscribers;
    for (auto& [id, client] : clients_) {
        if (client->memory_subscriber()) {
            subscribers.push_back(client);
        }
    }
    for (auto& client : subscribers) {
        send(*client, m);
    }
}

void server::send(client_connection& client, const proto::message& m) {
    std::array<char, proto::max_line_length + 1> buf{};
    std::size_t n = proto::format(m, buf.data(), buf.size());
    if (n == 0) {
        log(log_level::error, "cannot format a {} line for app {}", proto::verb_name(m.kind),
            m.app);
        return;
    }
    client.send(std::string_view(buf.data(), n));
}

void server::answer_waiter(const waiter& w, const proto::message& m) {
    auto it = clients_.find(w.client);
    if (it != clients_.end()) {
        it->second->wait_answered();
        send(*it->second, m);
    }
}

void server::client_replies::answer(const std::vector<waiter>& waiters, proto::verb verb,
                                    std::string_view app) {
    for (const waiter& w : waiters) {
        owner_.answer_waiter(w, make(verb, app, w.gen));
    }
}

void server::client_replies::answer_failed(const std::vector<waiter>& waiters, std::string_view app,
                                           const failure_reason& why) {
    for (const waiter& w : waiters) {
        owner_.answer_waiter(w, failed(app, w.gen, why));
    }
}

void server::client_replies::broadcast(proto::verb verb, std::string_view app,
                                       const std::vector<waiter>& except) {
    proto::message m = make(verb, app);
    // A send can drop a client that does not read (and erase it from clients_): walk a copy.
    std::vector<std::shared_ptr<client_connection>> clients;
    clients.reserve(owner_.clients_.size());
    for (auto& [id, client] : owner_.clients_) {
        // A connection that has not authenticated yet (its HELLO with the key) learns nothing.
        if (owner_.rules_.key.required() && !client->has_instance()) {
            continue;
        }
        if (std::none_of(except.begin(), except.end(),
                         [id = id](const waiter& w) { return w.client == id; })) {
            clients.push_back(client);
        }
    }
    for (auto& client : clients) {
        owner_.send(*client, m);
    }
}

// ---- requests ---------------------------------------------------------------------------------

// START, STOP and FREEZE of a unit outside the allowlist: no D-Bus call is made for it.
bool server::refuse_unit(client_connection& client, const proto::message& m) {
    if (rules_.units.allows(m.unit)) {
        return false;
    }
    if (std::uint64_t held = 0; log_refusal(client, held)) {
        log({m.app, m.unit}, log_level::warning,
            "client {} (pid {} uid {}): {} {} refused: not-allowed: {}{}", client.id(),
            client.peer().pid, client.peer().uid, proto::verb_name(m.kind), m.app, m.unit,
            held_back_note(held));
    }
    send(client, failed(m.app, m.gen, {proto::failure::not_allowed, std::string(m.unit)}));
    return true;
}

// One unit, one app: a unit that an app holds (starting, ready, stopping, freezing, frozen) is
// not started, stopped or frozen under another app's name. Two names on one unit would share
// its jobs (systemd merges them) and its state, and a STOP under another name would bypass
// the app's use leases. No D-Bus call is made for it.
bool server::refuse_held_unit(client_connection& client, const proto::message& m) {
    std::optional<std::string> holder = driver_.unit_holder(m.unit, m.app);
    if (!holder) {
        return false;
    }
    log({m.app, m.unit}, log_level::warning,
        "client {} (pid {} uid {}): {} {} refused: not-allowed: unit {} belongs to app {}",
        client.id(), client.peer().pid, client.peer().uid, proto::verb_name(m.kind), m.app, m.unit,
        *holder);
    send(client, failed(m.app, m.gen,
                        {proto::failure::not_allowed,
                         fmt::format("unit {} belongs to app {}", m.unit, *holder)}));
    return true;
}

// With a registry, helperd serves the apps of its app files only, each with its own unit,
// socket and ready mode; it keeps no record of any other name.
bool server::refuse_unregistered(client_connection& client, const proto::message& m) {
    if (!rules_.apps) {
        return false;
    }
    std::optional<std::string> why = rules_.apps->refusal(m);
    if (!why) {
        return false;
    }
    if (m.kind == proto::verb::use) {
        refuse_line(client, *why);
        return true;
    }
    log({m.app, m.unit}, log_level::warning,
        "client {} (pid {} uid {}): {} {} refused: not-allowed: {}", client.id(), client.peer().pid,
        client.peer().uid, proto::verb_name(m.kind), m.app, *why);
    send(client, failed(m.app, m.gen, {proto::failure::not_allowed, *why}));
    return true;
}

// Another nginx that shares this helperd still uses the app (it sent USE within its idle
// timeout): its requests must not lose the app under their feet.
bool server::refuse_in_use(client_connection& client, const proto::message& m) {
    auto left =
        driver_.core(m.app).used_elsewhere(client.lease_owner(), std::chrono::steady_clock::now());
    if (!left) {
        return false;
    }
    if (std::uint64_t held = 0; log_refusal(client, held)) {
        log({m.app, m.unit}, log_level::info,
            "client {}: {} {} refused: in use by another client for {} ms more{}", client.id(),
            proto::verb_name(m.kind), m.app, left->count(), held_back_note(held));
    }
    send(client, failed(m.app, m.gen,
                        {proto::failure::in_use,
                         fmt::format("by another client for {} ms more", left->count())}));
    return true;
}

void server::handle_start(client_connection& client, const proto::message& m) {
    if (refuse_unit(client, m) || refuse_held_unit(client, m)) {
        return;
    }
    // Under a registry the app file's START_TIMEOUT, never the client's (whose own deadline,
    // nginx's start_timeout, is its own business).
    std::chrono::milliseconds timeout = saturated_ms(m.timeout_ms, proto::max_timeout_ms);
    if (rules_.apps) {
        if (const registered_app* a = rules_.apps->find(m.app)) {
            timeout = a->start_timeout;
        }
    }
    client.wait_added();
    driver_.start({client.id(), m.gen}, m.app,
                  {std::string(m.unit), std::string(m.ready), timeout, std::string(m.socket)});
}

void server::handle_stop(client_connection& client, const proto::message& m) {
    if (refuse_unit(client, m) || refuse_held_unit(client, m) ||
        (!m.force && refuse_in_use(client, m))) {
        return;
    }
    client.wait_added();
    driver_.stop({client.id(), m.gen}, m.app, m.unit);
}

void server::handle_freeze(client_connection& client, const proto::message& m) {
    if (refuse_unit(client, m) || refuse_held_unit(client, m) || refuse_in_use(client, m)) {
        return;
    }
    client.wait_added();
    driver_.freeze({client.id(), m.gen}, m.app, m.unit);
}

// HELLO: the connection belongs to an nginx instance; its workers' USE leases are one owner's,
// so that one worker's STOP is not refused because a sibling worker uses the app.
void server::handle_hello(client_connection& client, const proto::message& m) {
    if (client.has_instance()) {
        refuse_line(client, "HELLO sent twice");
        return;
    }
    // The name is bound to its holder (uid, parent process) while its connections are open:
    // another process cannot take it, and so cannot renew or spend that nginx's leases.
    std::string why;
    std::optional<pid_t> parent = read_parent_pid(client.peer().pid, why);
    if (!parent) {
        refuse_and_close(
            client, fmt::format("cannot check the peer process {}: {}", client.peer().pid, why));
        return;
    }
    std::string name(m.instance);
    instance_holder holder;
    if (!instances_.claim(name, client.id(), {client.peer().uid, *parent}, &holder)) {
        log(log_level::warning,
            "client {} (pid {} uid {} parent {}): instance {} is held by uid {} parent {}",
            client.id(), client.peer().pid, client.peer().uid, *parent, name, holder.uid,
            holder.parent);
        refuse_and_close(client,
                         fmt::format("instance name {} is in use by another process", name));
        return;
    }
    client.set_instance(m.instance);
    log(log_level::info, "client {} belongs to instance {}{}", client.id(), m.instance,
        rules_.key.required() ? " (key checked)" : "");
}

void server::handle_status(client_connection& client) {
    if (client.draining()) {
        refuse_line(client, "STATUS already in progress");
        return;
    }
    send_status_page(client, {});
}

// STATUS is written a page at a time: the next page once the client has taken the last one,
// so that 10,000 apps never sit whole in helperd's memory nor in a reply queue. The page
// starts after the last app sent, so apps that come or go meanwhile do not upset it.
void server::send_status_page(client_connection& client, const std::string& after) {
    std::vector<app_status> page = driver_.status(after, status_page_apps);
    for (const app_status& a : page) {
        proto::message m = make(proto::verb::app, a.name);
        m.state = phase_name(a.phase);
        m.unit = a.unit;
        std::string attrs = fmt::format("since={} last={} starts={} failures={}", unix_ms(a.since),
                                        unix_ms(a.last_request), a.starts, a.failures);
        append_status_details(attrs, a);
        m.attrs = attrs;
        send(client, m);
    }
    if (page.size() < status_page_apps) {
        send(client, make(proto::verb::end, {}));
        return;
    }
    client.when_drained(guard_.wrap([this, id = client.id(), last = page.back().name] {
        if (auto it = clients_.find(id); it != clients_.end()) {
            send_status_page(*it->second, last);
        }
    }));
}

// ---- shutdown and bus loss --------------------------------------------------------------------

void server::bus_lost(const std::string& why) {
    driver_.bus_lost(why);
}

void server::shutdown(std::function<void()> done) {
    shutting_down_ = true;
    if (acceptor_) {
        boost::system::error_code ignored;
        acceptor_->close(ignored);
    }
    driver_.abandon_starts({proto::failure::shutting_down, {}});
    if (clients_.empty()) {
        done();
        return;
    }
    shutdown_done_ = std::move(done);
    std::vector<std::shared_ptr<client_connection>> clients;
    for (auto& [id, client] : clients_) {
        (void)id;
        clients.push_back(client);
    }
    for (auto& client : clients) {
        client->close_after_flush();
    }
    if (!shutdown_done_) {
        return; // every client closed at once
    }
    shutdown_timer_.expires_after(shutdown_flush_limit);
    shutdown_timer_.async_wait(guard_.wrap([this](boost::system::error_code ec) {
        if (ec || !shutdown_done_) {
            return;
        }
        log(log_level::warning, "{} client(s) did not take their last replies; closing",
            clients_.size());
        auto done = std::move(shutdown_done_);
        shutdown_done_ = nullptr;
        done();
    }));
}

} // namespace ondemand::helperd
