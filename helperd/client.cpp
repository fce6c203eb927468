// client_connection: reading, framing and the write queue of one client (see client.h).
// Must not include server.h or app_driver.h: lines go out through the line_handler.
#include "client.h"

#include "log.h"

#include <boost/asio/write.hpp>

namespace ondemand::helperd {

namespace asio = boost::asio;

client_connection::client_connection(client_id id, asio::local::stream_protocol::socket socket,
                                     peer_credentials peer)
    : id_(id), socket_(std::move(socket)), peer_(std::move(peer)),
      lease_owner_("#" + std::to_string(id)) {}

void client_connection::set_instance(std::string_view instance) {
    lease_owner_ = instance;
    has_instance_ = true;
}

void client_connection::start(line_handler on_line, close_handler on_close) {
    on_line_ = std::move(on_line);
    on_close_ = std::move(on_close);
    read();
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
            on_line_(*this, line);
            if (closed_ || closing_) {
                return;
            }
            break;
        case proto::line_reader::status::need_more:
            return;
        case proto::line_reader::status::too_long:
            log(log_level::warning, "client {} (pid {} uid {}): refused line: line too long", id_,
                peer_.pid, peer_.uid);
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
    if (queued_bytes_ + line.size() > max_queued_bytes) {
        log(log_level::warning, "client {} (pid {} uid {}): does not read its replies; dropping it",
            id_, peer_.pid, peer_.uid);
        close();
        return;
    }
    queued_bytes_ += line.size();
    output_.emplace_back(line);
    if (!writing_) {
        write_next();
    }
}

void client_connection::write_next() {
    if (output_.empty()) {
        writing_ = false;
        if (closing_) {
            close();
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
                          self->queued_bytes_ -= self->output_.front().size();
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
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    output_.clear();
    queued_bytes_ = 0;
    if (on_close_) {
        auto on_close = std::move(on_close_);
        on_close(id_);
    }
}

} // namespace ondemand::helperd
