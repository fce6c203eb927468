// client_connection: reading, framing and the write queue of one client (see client.h).
// Must not include server.h or app_driver.h: lines go out through the line_handler.
#include "client.h"

#include "log.h"

#include <boost/asio/write.hpp>

#include <algorithm>

namespace ondemand::helperd {

namespace asio = boost::asio;

client_connection::client_connection(client_id id, asio::local::stream_protocol::socket socket,
                                     peer_credentials peer)
    : id_(id), socket_(std::move(socket)), peer_(std::move(peer)),
      lease_owner_("#" + std::to_string(id)), line_timer_(socket_.get_executor()) {}

namespace {

// What a queued buffer costs: its allocation (or the inline buffer) and the deque slot.
std::size_t cost(const std::string& s) {
    return sizeof(std::string) + s.capacity();
}

} // namespace

void client_connection::set_instance(std::string_view instance) {
    lease_owner_ = instance;
    has_instance_ = true;
}

void client_connection::start(line_handler on_line, close_handler on_close) {
    on_line_ = std::move(on_line);
    on_close_ = std::move(on_close);
    update_line_timer();
    read();
}

void client_connection::update_line_timer() {
    bool partial = !got_line_ || reader_.pending() > 0;
    if (line_timeout_.count() <= 0 || !partial) {
        if (line_timer_armed_ != 0) {
            line_timer_armed_ = 0;
            line_timer_.cancel();
        }
        return;
    }
    if (line_timer_armed_ != 0) {
        return; // runs from the first byte of the partial line, not from the latest one
    }
    line_timer_armed_ = ++line_timer_count_;
    line_timer_.expires_after(line_timeout_);
    line_timer_.async_wait(
        [self = shared_from_this(), armed = line_timer_armed_](boost::system::error_code ec) {
            if (ec || self->closed_ || self->line_timer_armed_ != armed) {
                return;
            }
            log(log_level::warning,
                "client {} (pid {} uid {}): closed: {} ({} bytes) for {} ms (line timeout)",
                self->id_, self->peer_.pid, self->peer_.uid,
                self->reader_.pending() > 0 ? "a partial line" : "no line", self->reader_.pending(),
                self->line_timeout_.count());
            self->close();
        });
}

void client_connection::read() {
    socket_.async_read_some(
        asio::buffer(reader_.space(), reader_.room()),
        [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
            if (self->closed_ || self->closing_) {
                return;
            }
            if (ec) {
                if (ec != asio::error::eof) {
                    log(log_level::debug, "client {}: read: {}", self->id_, ec.message());
                }
                self->close();
                return;
            }
            self->reader_.commit(n);
            self->consume();
            if (!self->closed_ && !self->closing_) {
                self->update_line_timer();
                self->read();
            }
        });
}

// Hands every complete line to the daemon; refuses a line that outgrows the limit.
void client_connection::consume() {
    std::string_view line;
    for (;;) {
        switch (reader_.next(line)) {
        case proto::line_reader::status::line:
            got_line_ = true;
            on_line_(*this, line);
            if (closed_ || closing_) {
                return;
            }
            break;
        case proto::line_reader::status::need_more:
            return;
        case proto::line_reader::status::too_long:
            if (std::uint64_t held = 0; refusal_log_.allow(log_limiter::clock::now(), held)) {
                log(log_level::warning, "client {} (pid {} uid {}): refused line: line too long{}",
                    id_, peer_.pid, peer_.uid, held_back_note(held));
            }
            send("ERROR line too long\n");
            close_after_flush();
            return;
        }
    }
}

void client_connection::send(std::string_view line) {
    if (closed_) {
        return;
    }
    // Behind the buffer being written, replies share one buffer (fewer allocations to count).
    if (output_.size() > 1 && output_.back().size() + line.size() <= coalesce_bytes) {
        std::string& back = output_.back();
        std::size_t before = cost(back);
        std::size_t need = back.size() + line.size();
        std::size_t next_capacity =
            need <= back.capacity() ? back.capacity() : std::max(need, 2 * back.capacity());
        if (queued_bytes_ - before + sizeof(std::string) + next_capacity > max_queued_bytes) {
            drop_slow_reader();
            return;
        }
        back.append(line);
        queued_bytes_ = queued_bytes_ - before + cost(back);
        return;
    }
    std::string copy(line);
    if (queued_bytes_ + cost(copy) > max_queued_bytes) {
        drop_slow_reader();
        return;
    }
    queued_bytes_ += cost(copy);
    output_.push_back(std::move(copy));
    if (!writing_) {
        write_next();
    }
}

void client_connection::drop_slow_reader() {
    log(log_level::warning,
        "client {} (pid {} uid {}): does not read its replies ({} bytes queued); dropping it", id_,
        peer_.pid, peer_.uid, queued_bytes_);
    close();
}

void client_connection::write_next() {
    if (output_.empty()) {
        writing_ = false;
        if (closing_) {
            close();
        } else if (on_drained_) {
            auto drained = std::move(on_drained_);
            on_drained_ = nullptr;
            drained(); // may queue more and set the next one
        }
        return;
    }
    writing_ = true;
    asio::async_write(socket_, asio::buffer(output_.front()),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                          if (self->closed_) {
                              return;
                          }
                          if (ec) {
                              log(log_level::debug, "client {}: write: {}", self->id_,
                                  ec.message());
                              self->close();
                              return;
                          }
                          self->queued_bytes_ -= cost(self->output_.front());
                          self->output_.pop_front();
                          self->write_next();
                      });
}

void client_connection::close_after_flush() {
    closing_ = true;
    if (!writing_) {
        close();
    }
}

void client_connection::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    line_timer_armed_ = 0;
    line_timer_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    output_.clear();
    queued_bytes_ = 0;
    on_drained_ = nullptr;
    if (on_close_) {
        auto on_close = std::move(on_close_);
        on_close(id_);
    }
}

} // namespace ondemand::helperd
