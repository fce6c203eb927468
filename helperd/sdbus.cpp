// sdbus: the sd-bus RAII types and the bus_driver that runs sd-bus on the loop (see sdbus.h).
// Must not include any other helperd header but guard.h.
#include "sdbus.h"

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <poll.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace ondemand::helperd {

namespace asio = boost::asio;

std::string bus_error::message() const {
    return describe_bus_error(&error_, 0);
}

std::string describe_bus_error(const sd_bus_error* error, int r) {
    if (error != nullptr && sd_bus_error_is_set(error)) {
        if (error->message != nullptr) {
            return error->message;
        }
        return error->name;
    }
    return std::strerror(r < 0 ? -r : r);
}

bus_ptr open_bus(const bus_address& where) {
    sd_bus* raw = nullptr;
    int r = 0;
    switch (where.type) {
    case bus_address::kind::user:
        r = sd_bus_open_user(&raw);
        break;
    case bus_address::kind::system:
        r = sd_bus_open_system(&raw);
        break;
    case bus_address::kind::address: {
        r = sd_bus_new(&raw);
        bus_ptr bus(raw);
        if (r >= 0) {
            r = sd_bus_set_address(raw, where.address.c_str());
        }
        if (r >= 0) {
            r = sd_bus_set_bus_client(raw, where.peer_to_peer ? 0 : 1);
        }
        if (r >= 0) {
            r = sd_bus_start(raw);
        }
        if (r < 0) {
            throw std::runtime_error(
                fmt::format("cannot connect to bus {}: {}", where.address, std::strerror(-r)));
        }
        return bus;
    }
    }
    bus_ptr bus(raw);
    if (r < 0) {
        throw std::runtime_error(fmt::format(
            "cannot open the {} bus: {}", where.type == bus_address::kind::user ? "user" : "system",
            std::strerror(-r)));
    }
    return bus;
}

bus_driver::bus_driver(asio::io_context& io, bus_ptr bus)
    : bus_(std::move(bus)), fd_(io), timer_(io) {
    int fd = sd_bus_get_fd(bus_.get());
    if (fd < 0) {
        throw std::runtime_error(fmt::format("sd_bus_get_fd: {}", std::strerror(-fd)));
    }
    fd_.assign(fd);
    kick();
}

bus_driver::~bus_driver() {
    guard_.revoke();
    // The bus owns its fd: only stop watching it.
    boost::system::error_code ignored;
    fd_.cancel(ignored);
    fd_.release();
}

void bus_driver::kick() {
    if (kick_posted_ || failed_) {
        return;
    }
    kick_posted_ = true;
    asio::post(fd_.get_executor(), guard_.wrap([this] {
        kick_posted_ = false;
        process();
    }));
}

void bus_driver::fail(const std::string& why) {
    if (failed_) {
        return;
    }
    failed_ = true;
    boost::system::error_code ignored;
    fd_.cancel(ignored);
    timer_.cancel();
    if (on_failure) {
        on_failure(why);
    }
}

void bus_driver::process() {
    if (failed_) {
        return;
    }
    for (;;) {
        int r = sd_bus_process(bus_.get(), nullptr);
        if (r < 0) {
            fail(fmt::format("sd_bus_process: {}", std::strerror(-r)));
            return;
        }
        if (r == 0) {
            break;
        }
    }
    if (sd_bus_is_open(bus_.get()) <= 0) {
        fail("the bus connection closed");
        return;
    }
    arm();
}

void bus_driver::arm() {
    int events = sd_bus_get_events(bus_.get());
    if (events < 0) {
        fail(fmt::format("sd_bus_get_events: {}", std::strerror(-events)));
        return;
    }
    auto on_ready = guard_.wrap([this](bool* armed, const boost::system::error_code& ec) {
        *armed = false;
        if (!ec) {
            process();
        }
    });
    if ((events & POLLIN) != 0 && !read_armed_) {
        read_armed_ = true;
        fd_.async_wait(
            asio::posix::descriptor_base::wait_read,
            [on_ready, this](const boost::system::error_code& ec) { on_ready(&read_armed_, ec); });
    }
    if ((events & POLLOUT) != 0 && !write_armed_) {
        write_armed_ = true;
        fd_.async_wait(
            asio::posix::descriptor_base::wait_write,
            [on_ready, this](const boost::system::error_code& ec) { on_ready(&write_armed_, ec); });
    }

    std::uint64_t usec = 0;
    int r = sd_bus_get_timeout(bus_.get(), &usec);
    if (r < 0) {
        fail(fmt::format("sd_bus_get_timeout: {}", std::strerror(-r)));
        return;
    }
    if (usec == UINT64_MAX) {
        timer_.cancel();
        return;
    }
    // sd-bus gives an absolute CLOCK_MONOTONIC time, the clock behind steady_clock on Linux.
    timer_.expires_at(std::chrono::steady_clock::time_point(std::chrono::microseconds(usec)));
    timer_.async_wait(guard_.wrap([this](const boost::system::error_code& ec) {
        if (!ec) {
            process();
        }
    }));
}

namespace {

int reply_trampoline(sd_bus_message* reply, void* userdata, sd_bus_error* /*ret_error*/) {
    auto* handler = static_cast<reply_handler*>(userdata);
    (*handler)(reply, sd_bus_message_get_error(reply));
    return 0;
}

void destroy_handler(void* userdata) {
    delete static_cast<reply_handler*>(userdata);
}

} // namespace

int call_async(sd_bus* bus, sd_bus_message* call, reply_handler on_reply) {
    auto handler = std::make_unique<reply_handler>(std::move(on_reply));
    sd_bus_slot* raw_slot = nullptr;
    int r = sd_bus_call_async(bus, &raw_slot, call, reply_trampoline, handler.get(), 0);
    if (r < 0) {
        return r;
    }
    slot_ptr slot(raw_slot);
    // From here the slot owns the handler: it is deleted when the slot is freed, after the
    // reply or when the bus goes away. Floating: the bus keeps the slot alive until then.
    sd_bus_slot_set_destroy_callback(slot.get(), destroy_handler);
    (void)handler.release();
    sd_bus_slot_set_floating(slot.get(), 1);
    return 0;
}

} // namespace ondemand::helperd
