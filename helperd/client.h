// client_connection: one connected nginx worker. Reads request lines (at most
// proto::max_line_length bytes each, framed by proto::line_reader), hands them to the server,
// and writes replies in order through a write queue that never blocks the loop. It knows
// nothing of the protocol's meaning: it must not include server.h or app_driver.h.
#ifndef ONDEMAND_HELPERD_CLIENT_H
#define ONDEMAND_HELPERD_CLIENT_H

#include "app_core.h"
#include "log.h"
#include "ondemand_protocol.h"
#include "policy.h"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace ondemand::helperd {

class client_connection : public std::enable_shared_from_this<client_connection> {
  public:
    // A client that does not read its replies is dropped when this much is queued for it,
    // counted as allocated (each queued buffer's capacity and bookkeeping), not as payload.
    static constexpr std::size_t max_queued_bytes = 4 * 1024 * 1024;
    // Replies queued behind the one being written are appended to one buffer up to this size.
    static constexpr std::size_t coalesce_bytes = 64 * 1024;

    using line_handler = std::function<void(client_connection&, std::string_view line)>;
    using close_handler = std::function<void(client_id)>;

    client_connection(client_id id, boost::asio::local::stream_protocol::socket socket,
                      peer_credentials peer);

    client_id id() const { return id_; }
    const peer_credentials& peer() const { return peer_; }

    // Whose use leases this connection's USE lines renew: its nginx instance once it has
    // sent HELLO (every worker of one nginx shares it), else this connection alone ("#id").
    const std::string& lease_owner() const { return lease_owner_; }
    bool has_instance() const { return has_instance_; }
    // SUBSCRIBE memory: the connection gets MEMORY pushes.
    void subscribe_memory() { memory_subscriber_ = true; }
    bool memory_subscriber() const { return memory_subscriber_; }
    void set_instance(std::string_view instance);

    // A line must be complete this long after the connection began or after the first byte
    // of a partial line; the connection is closed otherwise. Zero: no limit. Before start().
    void set_line_timeout(std::chrono::milliseconds timeout) { line_timeout_ = timeout; }
    // Bytes allocated for the replies queued now (what max_queued_bytes limits).
    std::size_t queued_bytes() const { return queued_bytes_; }

    // Requests of this client that await an answer (START, WAIT, STOP, FREEZE handed to the
    // driver): the server counts them to cap what one client may keep waiting.
    std::size_t waits() const { return waits_; }
    void wait_added() { ++waits_; }
    void wait_answered() {
        if (waits_ > 0) {
            --waits_;
        }
    }

    // Called once when everything queued has been written (a long answer such as STATUS is
    // produced a page at a time, so that it never sits whole in memory); nullptr: nothing.
    void when_drained(std::function<void()> fn) { on_drained_ = std::move(fn); }
    bool draining() const { return static_cast<bool>(on_drained_); }

    // Bounds the log lines about this client's refused lines (log.h).
    log_limiter& refusal_log() { return refusal_log_; }

    // Starts reading. on_close is called once, when the connection is gone.
    void start(line_handler on_line, close_handler on_close);
    // Queues one line; `line` must end in '\n'.
    void send(std::string_view line);
    // Stops reading; closes once everything queued is written.
    void close_after_flush();
    void close();

  private:
    void read();
    void consume();
    void write_next();
    void drop_slow_reader();
    // Arms the line timer when a partial line (or no line yet) is pending, disarms it once
    // every byte read belongs to a complete line.
    void update_line_timer();

    client_id id_;
    boost::asio::local::stream_protocol::socket socket_;
    peer_credentials peer_;
    std::string lease_owner_;
    bool has_instance_ = false;
    bool memory_subscriber_ = false;
    line_handler on_line_;
    close_handler on_close_;
    // The partial line: room for the longest line and its '\n'.
    std::array<char, proto::max_line_length + 1> input_{};
    proto::line_reader reader_{input_.data(), input_.size()};
    std::function<void()> on_drained_;
    log_limiter refusal_log_;
    std::size_t waits_ = 0;
    std::deque<std::string> output_;
    std::size_t queued_bytes_ = 0;
    std::chrono::milliseconds line_timeout_{0};
    boost::asio::steady_timer line_timer_;
    std::uint64_t line_timer_armed_ = 0; // which arming is current; 0: disarmed
    std::uint64_t line_timer_count_ = 0;
    bool got_line_ = false;
    bool writing_ = false;
    bool closing_ = false;
    bool closed_ = false;
};

} // namespace ondemand::helperd

#endif
