#include "server.h"

#include "log.h"

#include <fmt/format.h>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace ondemand::helperd {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t early_jobs_kept = 256;
constexpr auto shutdown_flush_limit = 2s;

peer_credentials read_peer_credentials(int fd) {
    peer_credentials peer;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        peer.pid = cred.pid;
        peer.uid = cred.uid;
        peer.gid = cred.gid;
    } else {
        // Unknown credentials must never pass a uid/gid check by accident.
        peer.uid = static_cast<uid_t>(-1);
        peer.gid = static_cast<gid_t>(-1);
    }
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 4; ++tries) {
        socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
            groups.resize(size / sizeof(gid_t));
            peer.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) {
            break;
        }
        groups.resize(size / sizeof(gid_t) + 1);
    }
    return peer;
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

// A reason must be one line of printable text for the wire.
std::string sanitize(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        out.push_back(c >= ' ' && c < 0x7f ? c : ' ');
    }
    if (out.size() > 1024) {
        out.resize(1024);
    }
    return out;
}

} // namespace

server::server(asio::io_context& io, access_rules rules, systemd_manager& systemd)
    : io_(io), rules_(std::move(rules)), systemd_(systemd), inotify_(inotify_hub::create(io)),
      pending_timer_(io), shutdown_timer_(io) {
    systemd_.on_job_removed = [this](std::string_view job, std::string_view unit,
                                     std::string_view result) {
        on_job_removed(job, unit, result);
    };
    systemd_.on_active_state = [this](std::string_view path, std::string_view state) {
        on_active_state(path, state);
    };
}

server::~server() {
    *alive_ = false;
    systemd_.on_job_removed = nullptr;
    systemd_.on_active_state = nullptr;
    for (auto& [id, client] : clients_) {
        (void)id;
        client->close();
    }
    for (auto& [name, a] : apps_) {
        (void)name;
        if (a->probe) {
            a->probe->stop();
        }
    }
}

void server::serve(int listen_fd) {
    acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(io_);
    acceptor_->assign(asio::local::stream_protocol(), listen_fd);
    accept();
}

void server::set_rules(access_rules rules) {
    rules_ = std::move(rules);
}

std::size_t server::app_count(app_phase phase) const {
    return static_cast<std::size_t>(
        std::count_if(apps_.begin(), apps_.end(),
                      [phase](const auto& e) { return e.second->core.phase() == phase; }));
}

// ---- clients ----------------------------------------------------------------------------------

void server::accept() {
    acceptor_->async_accept([this, alive = alive_](boost::system::error_code ec,
                                                   asio::local::stream_protocol::socket socket) {
        if (!*alive || shutting_down_) {
            return;
        }
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                return;
            }
            // EMFILE and the like: keep serving the clients we have.
            log(log_level::error, "accept: {}", ec.message());
        } else {
            on_accepted(std::move(socket));
        }
        accept();
    });
}

void server::on_accepted(asio::local::stream_protocol::socket socket) {
    peer_credentials peer = read_peer_credentials(socket.native_handle());
    client_id id = next_client_++;
    auto client = std::make_shared<client_connection>(id, std::move(socket), peer);
    if (!rules_.peers.allows(peer)) {
        log(log_level::warning, "refused client {} (pid {} uid {} gid {}): peer not allowed", id,
            peer.pid, peer.uid, peer.gid);
        client->send("ERROR peer not allowed\n");
        client->close_after_flush();
        return;
    }
    log(log_level::info, "client {} connected (pid {} uid {} gid {})", id, peer.pid, peer.uid,
        peer.gid);
    clients_.emplace(id, client);
    client->start([this](client_connection& c, std::string_view line) { on_line(c, line); },
                  [this, alive = alive_](client_id gone) {
                      if (*alive) {
                          on_client_closed(gone);
                      }
                  });
}

void server::on_client_closed(client_id id) {
    std::string owner;
    if (auto it = clients_.find(id); it != clients_.end()) {
        owner = it->second->lease_owner();
        clients_.erase(it);
    }
    // An nginx's leases last while any of its workers is connected.
    bool owner_left = std::none_of(clients_.begin(), clients_.end(), [&owner](const auto& c) {
        return c.second->lease_owner() == owner;
    });
    std::string own_key = "#" + std::to_string(id);
    for (auto& [name, a] : apps_) {
        (void)name;
        a->core.forget_client(id);
        a->core.forget_owner(own_key); // USE lines sent before its HELLO
        if (owner_left) {
            a->core.forget_owner(owner);
        }
    }
    log(log_level::info, "client {} disconnected", id);
    if (shutting_down_ && clients_.empty() && shutdown_done_) {
        shutdown_timer_.cancel();
        auto done = std::move(shutdown_done_);
        shutdown_done_ = nullptr;
        done();
    }
}

void server::on_line(client_connection& client, std::string_view line) {
    proto::parse_result r = proto::parse(line);
    const peer_credentials& peer = client.peer();
    if (!r.ok) {
        log(log_level::warning, "client {} (pid {} uid {}): refused line: {}", client.id(),
            peer.pid, peer.uid, r.error);
        send(client, make(proto::verb::error, {}, 0, r.error));
        return;
    }
    log(log_level::debug, "client {}: {}", client.id(), line);
    if (shutting_down_) {
        if (r.msg.kind == proto::verb::start || r.msg.kind == proto::verb::wait) {
            send(client, failed(r.msg.app, r.msg.gen, {proto::failure::shutting_down, {}}));
        }
        return;
    }
    switch (r.msg.kind) {
    case proto::verb::hello:
        handle_hello(client, r.msg);
        break;
    case proto::verb::start:
        handle_start(client, r.msg);
        break;
    case proto::verb::wait:
        handle_wait(client, r.msg);
        break;
    case proto::verb::stop:
        handle_stop(client, r.msg);
        break;
    case proto::verb::freeze:
        handle_freeze(client, r.msg);
        break;
    case proto::verb::use:
        app(r.msg.app).core.on_use(client.lease_owner(), std::chrono::steady_clock::now(),
                                   std::chrono::milliseconds(r.msg.lease_ms));
        break;
    case proto::verb::status:
        handle_status(client);
        break;
    default: {
        std::string why = fmt::format("unexpected verb {}", proto::verb_name(r.msg.kind));
        log(log_level::warning, "client {} (pid {} uid {}): refused line: {}", client.id(),
            peer.pid, peer.uid, why);
        send(client, make(proto::verb::error, {}, 0, why));
        break;
    }
    }
    if (auto it = apps_.find(r.msg.app); !r.msg.app.empty() && it != apps_.end()) {
        it->second->last_request = std::chrono::system_clock::now();
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

void server::send(client_id id, const proto::message& m) {
    auto it = clients_.find(id);
    if (it != clients_.end()) {
        send(*it->second, m);
    }
}

void server::answer(const std::vector<waiter>& waiters, proto::verb verb, std::string_view app) {
    for (const waiter& w : waiters) {
        send(w.client, make(verb, app, w.gen));
    }
}

void server::answer_failed(const std::vector<waiter>& waiters, std::string_view app,
                           const failure_reason& why) {
    for (const waiter& w : waiters) {
        send(w.client, failed(app, w.gen, why));
    }
}

void server::broadcast(const proto::message& m, const std::vector<waiter>& except) {
    for (auto& [id, client] : clients_) {
        if (std::none_of(except.begin(), except.end(),
                         [id = id](const waiter& w) { return w.client == id; })) {
            send(*client, m);
        }
    }
}

// ---- requests ---------------------------------------------------------------------------------

server::app_runtime& server::app(std::string_view name) {
    auto it = apps_.find(name);
    if (it == apps_.end()) {
        it = apps_.emplace(std::string(name), std::make_unique<app_runtime>(std::string(name), io_))
                 .first;
    }
    return *it->second;
}

void server::handle_start(client_connection& client, const proto::message& m) {
    waiter w{client.id(), m.gen};
    if (!rules_.units.allows(m.unit)) {
        log({m.app, m.unit}, log_level::warning,
            "client {} (pid {} uid {}): START {} refused: not-allowed: {}", client.id(),
            client.peer().pid, client.peer().uid, m.app, m.unit);
        send(client, failed(m.app, m.gen, {proto::failure::not_allowed, std::string(m.unit)}));
        return;
    }
    app_runtime& a = app(m.app);
    start_params params{std::string(m.unit), std::string(m.ready),
                        std::chrono::milliseconds(m.timeout_ms), std::string(m.socket)};
    app_core::start_decision d = a.core.on_start(w, std::move(params));
    switch (d) {
    case app_core::start_decision::start_unit:
    case app_core::start_decision::check_active:
    case app_core::start_decision::thaw_unit:
        begin_start(a, d);
        break;
    case app_core::start_decision::joined:
        log({m.app, m.unit}, log_level::debug, "START {} gen {} from client {} joins the start",
            m.app, m.gen, client.id());
        break;
    case app_core::start_decision::after_stop:
        log({m.app, m.unit}, log_level::info,
            "START {} gen {} from client {} waits for the stop to finish", m.app, m.gen,
            client.id());
        break;
    }
}

void server::handle_wait(client_connection& client, const proto::message& m) {
    waiter w{client.id(), m.gen};
    app_runtime& a = app(m.app);
    switch (a.core.on_wait(w, std::chrono::steady_clock::now())) {
    case app_core::wait_decision::joined:
        break;
    case app_core::wait_decision::ready_now:
        send(client, make(proto::verb::ready, m.app, m.gen));
        break;
    case app_core::wait_decision::failed_now:
        send(client, failed(m.app, m.gen, a.core.last_failure()));
        break;
    case app_core::wait_decision::pending:
        if (auto next = a.core.next_pending_deadline()) {
            arm_pending_sweep(*next);
        }
        break;
    }
}

void server::handle_stop(client_connection& client, const proto::message& m) {
    waiter w{client.id(), m.gen};
    if (!rules_.units.allows(m.unit)) {
        log({m.app, m.unit}, log_level::warning,
            "client {} (pid {} uid {}): STOP {} refused: not-allowed: {}", client.id(),
            client.peer().pid, client.peer().uid, m.app, m.unit);
        send(client, failed(m.app, m.gen, {proto::failure::not_allowed, std::string(m.unit)}));
        return;
    }
    app_runtime& a = app(m.app);
    if (!m.force && refuse_in_use(client, a, m, "STOP")) {
        return;
    }
    app_phase before = a.core.phase();
    std::vector<waiter> canceled;
    app_core::stop_decision d = a.core.on_stop(w, std::string(m.unit), canceled);
    answer_failed(canceled, m.app, {proto::failure::canceled, "by STOP"});
    if (d == app_core::stop_decision::stop_unit) {
        a.announce_stop = before == app_phase::ready || before == app_phase::frozen ||
                          before == app_phase::freezing;
        begin_stop(a);
    }
}

// HELLO: the connection belongs to an nginx instance; its workers' USE leases are one owner's,
// so that one worker's STOP is not refused because a sibling worker uses the app.
void server::handle_hello(client_connection& client, const proto::message& m) {
    if (client.has_instance()) {
        log(log_level::warning, "client {} (pid {} uid {}): refused line: HELLO sent twice",
            client.id(), client.peer().pid, client.peer().uid);
        send(client, make(proto::verb::error, {}, 0, "HELLO sent twice"));
        return;
    }
    client.set_instance(m.instance);
    log(log_level::info, "client {} belongs to instance {}", client.id(), m.instance);
}

// Another nginx that shares this helperd still uses the app (it sent USE within its idle
// timeout): its requests must not lose the app under their feet.
bool server::refuse_in_use(client_connection& client, app_runtime& a, const proto::message& m,
                           std::string_view what) {
    auto left = a.core.used_elsewhere(client.lease_owner(), std::chrono::steady_clock::now());
    if (!left) {
        return false;
    }
    log({m.app, m.unit}, log_level::info,
        "client {}: {} {} refused: in use by another client for {} ms more", client.id(), what,
        m.app, left->count());
    send(client, failed(m.app, m.gen,
                        {proto::failure::in_use,
                         fmt::format("by another client for {} ms more", left->count())}));
    return true;
}

void server::handle_freeze(client_connection& client, const proto::message& m) {
    waiter w{client.id(), m.gen};
    if (!rules_.units.allows(m.unit)) {
        log({m.app, m.unit}, log_level::warning,
            "client {} (pid {} uid {}): FREEZE {} refused: not-allowed: {}", client.id(),
            client.peer().pid, client.peer().uid, m.app, m.unit);
        send(client, failed(m.app, m.gen, {proto::failure::not_allowed, std::string(m.unit)}));
        return;
    }
    app_runtime& a = app(m.app);
    if (refuse_in_use(client, a, m, "FREEZE")) {
        return;
    }
    switch (a.core.on_freeze(w, std::string(m.unit))) {
    case app_core::freeze_decision::freeze_unit:
        begin_freeze(a);
        break;
    case app_core::freeze_decision::joined:
        break;
    case app_core::freeze_decision::refused:
        send(client, failed(m.app, m.gen,
                            {proto::failure::not_freezable,
                             fmt::format("app is {}", phase_name(a.core.phase()))}));
        break;
    }
}

void server::handle_status(client_connection& client) {
    for (const auto& [name, a] : apps_) {
        if (a->core.phase() == app_phase::unknown || a->core.unit().empty()) {
            continue;
        }
        proto::message m = make(proto::verb::app, name);
        m.state = phase_name(a->core.phase());
        m.unit = a->core.unit();
        std::string attrs =
            fmt::format("since={} last={} starts={} failures={}", unix_ms(a->core.phase_since()),
                        unix_ms(a->last_request), a->starts, a->failures);
        m.attrs = attrs;
        send(client, m);
    }
    send(client, make(proto::verb::end, {}));
}

// ---- starting ---------------------------------------------------------------------------------

bool server::current(const app_runtime& a, std::uint64_t attempt, app_phase phase) const {
    return a.core.attempt() == attempt && a.core.phase() == phase;
}

void server::track_unit(app_runtime& a) {
    std::string path = unit_object_path(a.core.unit());
    if (path == a.object_path) {
        return;
    }
    if (!a.object_path.empty()) {
        auto& names = units_by_path_[a.object_path];
        std::erase(names, a.core.name());
        if (names.empty()) {
            units_by_path_.erase(a.object_path);
        }
    }
    a.object_path = path;
    units_by_path_[path].push_back(a.core.name());
}

// Drops what the previous attempt left running.
void server::end_attempt(app_runtime& a) {
    if (a.probe) {
        a.probe->stop();
        a.probe.reset();
    }
    a.deadline.cancel();
    if (!a.job.empty()) {
        jobs_.erase(a.job);
        a.job.clear();
    }
    a.job_done = false;
    a.explaining = false;
}

void server::begin_start(app_runtime& a, app_core::start_decision how) {
    end_attempt(a);
    track_unit(a);
    std::uint64_t attempt = a.core.attempt();
    a.began = std::chrono::steady_clock::now();
    a.deadline.expires_after(a.core.params().timeout);
    a.deadline.async_wait([this, &a, attempt, alive = alive_](boost::system::error_code ec) {
        if (ec || !*alive || !current(a, attempt, app_phase::starting)) {
            return;
        }
        std::string seen;
        if (!a.job_done) {
            seen = "the start job did not finish";
        } else if (a.probe) {
            seen = a.probe->last_observation();
        }
        start_failed(a, attempt, {proto::failure::timeout, seen});
    });
    if (how == app_core::start_decision::thaw_unit) {
        log({a.core.name(), a.core.unit()}, log_level::info, "ThawUnit {} for app {}",
            a.core.unit(), a.core.name());
        systemd_.thaw_unit(a.core.unit(),
                           [this, &a, attempt, alive = alive_](const std::string& error) {
                               if (!*alive || !current(a, attempt, app_phase::starting)) {
                                   return;
                               }
                               if (error.empty()) {
                                   a.job_done = true;
                                   start_succeeded(a, attempt);
                                   return;
                               }
                               // Not frozen any more (thawed or stopped by someone else): start it
                               // normally.
                               log({a.core.name(), a.core.unit()}, log_level::info,
                                   "ThawUnit {} failed: {}", a.core.unit(), error);
                               call_start_unit(a, attempt);
                           });
        return;
    }
    if (how != app_core::start_decision::check_active) {
        call_start_unit(a, attempt);
        return;
    }
    // Believed ready: answer at once if the unit is still active, without a StartUnit.
    systemd_.read_unit_state(a.core.unit(), [this, &a, attempt, alive = alive_](
                                                const unit_state& st, const std::string& error) {
        if (!*alive || !current(a, attempt, app_phase::starting)) {
            return;
        }
        if (error.empty() && st.active_state == "active") {
            a.job_done = true;
            start_succeeded(a, attempt);
            return;
        }
        call_start_unit(a, attempt);
    });
}

void server::call_start_unit(app_runtime& a, std::uint64_t attempt) {
    const waiter* first = a.core.start_waiters().empty() ? nullptr : &a.core.start_waiters()[0];
    log({a.core.name(), a.core.unit()}, log_level::info, "StartUnit {} for app {} (gen {})",
        a.core.unit(), a.core.name(), first != nullptr ? first->gen : 0);
    ++a.starts;
    systemd_.start_unit(a.core.unit(), [this, &a, attempt, alive = alive_](
                                           const std::string& job, const std::string& error) {
        if (!*alive || !current(a, attempt, app_phase::starting)) {
            return;
        }
        if (!error.empty()) {
            start_failed(a, attempt,
                         {proto::failure::systemd_refused, fmt::format("StartUnit: {}", error)});
            return;
        }
        remember_job(a, job);
    });
}

void server::remember_job(app_runtime& a, const std::string& job) {
    auto early = std::find_if(early_jobs_.begin(), early_jobs_.end(),
                              [&](const auto& e) { return e.first == job; });
    if (early != early_jobs_.end()) {
        std::string result = early->second;
        early_jobs_.erase(early);
        a.job.clear();
        if (a.core.phase() == app_phase::starting) {
            start_job_finished(a, result);
        } else {
            stop_finished(a, a.core.attempt(), {});
        }
        return;
    }
    a.job = job;
    jobs_[job] = a.core.name();
}

void server::on_job_removed(std::string_view job, std::string_view /*unit*/,
                            std::string_view result) {
    auto it = jobs_.find(std::string(job));
    if (it == jobs_.end()) {
        early_jobs_.emplace_back(job, result);
        if (early_jobs_.size() > early_jobs_kept) {
            early_jobs_.pop_front();
        }
        return;
    }
    std::string name = it->second;
    jobs_.erase(it);
    app_runtime& a = app(name);
    if (a.job != job) {
        return;
    }
    a.job.clear();
    if (a.core.phase() == app_phase::starting) {
        start_job_finished(a, result);
    } else if (a.core.phase() == app_phase::stopping) {
        if (result != "done") {
            log({a.core.name(), a.core.unit()}, log_level::warning,
                "stop job of {} for app {} ended with {}", a.core.unit(), a.core.name(), result);
        }
        stop_finished(a, a.core.attempt(), {});
    }
}

void server::start_job_finished(app_runtime& a, std::string_view result) {
    std::uint64_t attempt = a.core.attempt();
    if (result != "done") {
        explain_failure(a, attempt, fmt::format("start job {}", result));
        return;
    }
    a.job_done = true;
    if (a.core.params().ready == "notify") {
        start_succeeded(a, attempt);
        return;
    }
    begin_readiness(a, attempt);
}

void server::begin_readiness(app_runtime& a, std::uint64_t attempt) {
    const std::string& ready = a.core.params().ready;
    std::string http_path = ready.rfind("http:", 0) == 0 ? ready.substr(5) : std::string();
    a.probe = readiness_probe::create(io_, inotify_, a.core.params().socket, http_path,
                                      [this, &a, attempt] { start_succeeded(a, attempt); });
    a.probe->start();
    if (!current(a, attempt, app_phase::starting)) {
        return; // it was ready at once
    }
    // The unit may have died before its state changes reached us in order with the job's end:
    // read the state now (systemd answers after everything it did so far).
    systemd_.read_unit_state(a.core.unit(), [this, &a, attempt, alive = alive_](
                                                const unit_state& st, const std::string& error) {
        if (!*alive || !error.empty() || !current(a, attempt, app_phase::starting)) {
            return;
        }
        active_state_changed(a, st.active_state);
    });
}

void server::explain_failure(app_runtime& a, std::uint64_t attempt, std::string prefix) {
    if (a.explaining) {
        return;
    }
    a.explaining = true;
    systemd_.read_unit_state(
        a.core.unit(), [this, &a, attempt, prefix = std::move(prefix),
                        alive = alive_](const unit_state& st, const std::string& error) {
            if (!*alive || !current(a, attempt, app_phase::starting)) {
                return;
            }
            start_failed(
                a, attempt,
                {proto::failure::unit_failed,
                 error.empty() ? fmt::format("{}: {}", prefix, describe_unit_state(st)) : prefix});
        });
}

void server::start_succeeded(app_runtime& a, std::uint64_t attempt) {
    if (!current(a, attempt, app_phase::starting)) {
        return;
    }
    end_attempt(a);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - a.began)
                  .count();
    std::vector<waiter> waiters = a.core.start_succeeded(attempt);
    log({a.core.name(), a.core.unit()}, log_level::info,
        "app {} ready after {} ms (unit {}, {} waiters)", a.core.name(), ms, a.core.unit(),
        waiters.size());
    answer(waiters, proto::verb::ready, a.core.name());
}

void server::start_failed(app_runtime& a, std::uint64_t attempt, failure_reason reason) {
    if (!current(a, attempt, app_phase::starting)) {
        return;
    }
    end_attempt(a);
    ++a.failures;
    reason.detail = sanitize(reason.detail);
    log({a.core.name(), a.core.unit()}, log_level::warning, "app {} start failed (unit {}): {} {}",
        a.core.name(), a.core.unit(), proto::failure_name(reason.code), reason.detail);
    std::vector<waiter> waiters = a.core.start_failed(attempt, reason);
    answer_failed(waiters, a.core.name(), reason);
}

// ---- stopping ---------------------------------------------------------------------------------

void server::begin_stop(app_runtime& a) {
    end_attempt(a);
    track_unit(a);
    std::uint64_t attempt = a.core.attempt();
    const waiter* first = a.core.stop_waiters().empty() ? nullptr : &a.core.stop_waiters()[0];
    log({a.core.name(), a.core.unit()}, log_level::info, "StopUnit {} for app {} (gen {})",
        a.core.unit(), a.core.name(), first != nullptr ? first->gen : 0);
    systemd_.stop_unit(a.core.unit(), [this, &a, attempt, alive = alive_](const std::string& job,
                                                                          const std::string& error,
                                                                          bool no_such_unit) {
        if (!*alive || !current(a, attempt, app_phase::stopping)) {
            return;
        }
        if (!error.empty()) {
            // A unit that is not loaded is not running: that is stopped.
            stop_finished(a, attempt, no_such_unit ? std::string() : error);
            return;
        }
        remember_job(a, job);
    });
}

void server::stop_finished(app_runtime& a, std::uint64_t attempt, const std::string& error) {
    if (!current(a, attempt, app_phase::stopping)) {
        return;
    }
    end_attempt(a);
    bool announce = a.announce_stop;
    a.announce_stop = false;
    app_core::stop_outcome out = a.core.stop_finished(attempt);
    if (error.empty()) {
        log({a.core.name(), a.core.unit()}, log_level::info, "app {} stopped (unit {})",
            a.core.name(), a.core.unit());
        // The other clients (every other nginx worker, when ondemandctl stopped the app) still
        // believe it ready: tell them, before the stopper hears STOPPED. Not when a START came
        // meanwhile: the app is starting again, and its clients wait for that.
        if (announce && !out.start_next) {
            log({a.core.name(), a.core.unit()}, log_level::info,
                "app {} down: stopped by STOP, telling the other clients", a.core.name());
            broadcast(make(proto::verb::down, a.core.name()), out.waiters);
        }
        answer(out.waiters, proto::verb::stopped, a.core.name());
    } else {
        log({a.core.name(), a.core.unit()}, log_level::warning, "app {} {}", a.core.name(), error);
        answer_failed(out.waiters, a.core.name(), {proto::failure::stop_failed, sanitize(error)});
    }
    if (out.start_next) {
        begin_start(a, app_core::start_decision::start_unit);
    }
}

void server::begin_freeze(app_runtime& a) {
    end_attempt(a);
    track_unit(a);
    std::uint64_t attempt = a.core.attempt();
    log({a.core.name(), a.core.unit()}, log_level::info, "FreezeUnit {} for app {}", a.core.unit(),
        a.core.name());
    systemd_.freeze_unit(a.core.unit(),
                         [this, &a, attempt, alive = alive_](const std::string& error) {
                             if (*alive && current(a, attempt, app_phase::freezing)) {
                                 freeze_finished(a, attempt, error);
                             }
                         });
}

void server::freeze_finished(app_runtime& a, std::uint64_t attempt, const std::string& error) {
    app_core::freeze_outcome out = a.core.freeze_finished(attempt, error.empty());
    if (error.empty()) {
        log({a.core.name(), a.core.unit()}, log_level::info, "app {} frozen (unit {})",
            a.core.name(), a.core.unit());
        answer(out.waiters, proto::verb::frozen, a.core.name());
    } else {
        log({a.core.name(), a.core.unit()}, log_level::warning, "app {} freeze failed: {}",
            a.core.name(), error);
        answer_failed(out.waiters, a.core.name(), {proto::failure::freeze_failed, sanitize(error)});
    }
    if (out.start_next) {
        begin_start(a, *out.start_next);
    }
}

// ---- unit state -------------------------------------------------------------------------------

void server::on_active_state(std::string_view path, std::string_view state) {
    auto it = units_by_path_.find(std::string(path));
    if (it == units_by_path_.end()) {
        return;
    }
    std::vector<std::string> names = it->second;
    for (const std::string& name : names) {
        app_runtime& a = app(name);
        if (!state.empty()) {
            active_state_changed(a, state);
            continue;
        }
        std::uint64_t attempt = a.core.attempt();
        systemd_.read_unit_state(
            a.core.unit(),
            [this, &a, attempt, alive = alive_](const unit_state& st, const std::string& error) {
                if (*alive && error.empty() && a.core.attempt() == attempt) {
                    active_state_changed(a, st.active_state);
                }
            });
    }
}

void server::active_state_changed(app_runtime& a, std::string_view state) {
    bool running = state == "active" || state == "reloading";
    switch (a.core.phase()) {
    case app_phase::ready:
    case app_phase::frozen:
        if (!running && a.core.went_down()) {
            log({a.core.name(), a.core.unit()}, log_level::warning, "app {} down: unit {} is {}",
                a.core.name(), a.core.unit(), state);
            broadcast(make(proto::verb::down, a.core.name()));
        }
        break;
    case app_phase::starting:
        if (a.job_done && (state == "failed" || state == "inactive" || state == "deactivating")) {
            explain_failure(a, a.core.attempt(), fmt::format("unit {} before ready", state));
        }
        break;
    default:
        break;
    }
}

// ---- WAITs without a start --------------------------------------------------------------------

void server::arm_pending_sweep(steady_time when) {
    if (pending_expiry_ && *pending_expiry_ <= when) {
        return;
    }
    pending_expiry_ = when;
    pending_timer_.expires_at(when);
    pending_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
        if (!ec && *alive) {
            pending_expiry_.reset();
            sweep_pending();
        }
    });
}

void server::sweep_pending() {
    steady_time now = std::chrono::steady_clock::now();
    std::optional<steady_time> next;
    for (auto& [name, a] : apps_) {
        std::vector<waiter> expired = a->core.expire_pending(now);
        if (!expired.empty()) {
            log({name, {}}, log_level::warning, "app {}: {} WAIT(s) saw no START within {} s", name,
                expired.size(), app_core::pending_wait_limit.count());
            answer_failed(expired, name, {proto::failure::no_start_pending, {}});
        }
        if (auto d = a->core.next_pending_deadline(); d && (!next || *d < *next)) {
            next = d;
        }
    }
    if (next) {
        arm_pending_sweep(*next);
    }
}

// ---- shutdown and bus loss --------------------------------------------------------------------

void server::bus_lost(const std::string& why) {
    for (auto& [name, a] : apps_) {
        if (a->core.phase() == app_phase::starting) {
            start_failed(*a, a->core.attempt(), {proto::failure::bus_lost, why});
        }
    }
}

void server::shutdown(std::function<void()> done) {
    shutting_down_ = true;
    if (acceptor_) {
        boost::system::error_code ignored;
        acceptor_->close(ignored);
    }
    for (auto& [name, a] : apps_) {
        end_attempt(*a);
        failure_reason why{proto::failure::shutting_down, {}};
        std::vector<waiter> waiters = a->core.abandon_starts(why);
        answer_failed(waiters, name, why);
    }
    pending_timer_.cancel();
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
    shutdown_timer_.async_wait([this, alive = alive_](boost::system::error_code ec) {
        if (ec || !*alive || !shutdown_done_) {
            return;
        }
        log(log_level::warning, "{} client(s) did not take their last replies; closing",
            clients_.size());
        auto done = std::move(shutdown_done_);
        shutdown_done_ = nullptr;
        done();
    });
}

} // namespace ondemand::helperd
