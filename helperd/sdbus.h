// RAII over sd-bus objects, and the driver that runs an sd_bus connection on a Boost.Asio
// io_context: the bus fd is watched for the events sd_bus_get_events() asks for, a steady_timer
// follows sd_bus_get_timeout(), and every wake processes until sd_bus_process() returns 0.
// It knows no systemd method: it must not include any other helperd header but guard.h.
#ifndef ONDEMAND_HELPERD_SDBUS_H
#define ONDEMAND_HELPERD_SDBUS_H

#include "guard.h"

#include <systemd/sd-bus.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>

namespace ondemand::helperd {

struct bus_closer {
    void operator()(sd_bus* bus) const noexcept { sd_bus_flush_close_unref(bus); }
};
struct slot_unref {
    void operator()(sd_bus_slot* slot) const noexcept { sd_bus_slot_unref(slot); }
};
struct message_unref {
    void operator()(sd_bus_message* m) const noexcept { sd_bus_message_unref(m); }
};
using bus_ptr = std::unique_ptr<sd_bus, bus_closer>;
using slot_ptr = std::unique_ptr<sd_bus_slot, slot_unref>;
using message_ptr = std::unique_ptr<sd_bus_message, message_unref>;

// An sd_bus_error that frees itself.
class bus_error {
  public:
    bus_error() = default;
    bus_error(const bus_error&) = delete;
    bus_error& operator=(const bus_error&) = delete;
    ~bus_error() { sd_bus_error_free(&error_); }

    sd_bus_error* get() { return &error_; }
    bool is_set() const { return sd_bus_error_is_set(&error_) != 0; }
    std::string message() const;

  private:
    sd_bus_error error_ = SD_BUS_ERROR_NULL;
};

// "name: message" of a D-Bus error, or strerror(-r) when there is none.
std::string describe_bus_error(const sd_bus_error* error, int r);

// Which bus to open.
struct bus_address {
    enum class kind { user, system, address } type = kind::system;
    std::string address;       // for kind::address
    bool peer_to_peer = false; // address is a manager's private socket, not a message bus
};

// Opens (and, for an address, connects) a bus. Throws std::runtime_error on failure.
bus_ptr open_bus(const bus_address& where);

class bus_driver {
  public:
    bus_driver(boost::asio::io_context& io, bus_ptr bus);
    bus_driver(const bus_driver&) = delete;
    bus_driver& operator=(const bus_driver&) = delete;
    ~bus_driver();

    sd_bus* get() const { return bus_.get(); }

    // Processes soon: call after queueing messages outside a bus callback, so that the
    // watched events are brought up to date (e.g. POLLOUT for a partly written queue).
    void kick();

    // Called once when the connection fails or closes; the driver stops then.
    std::function<void(const std::string& why)> on_failure;

  private:
    void process();
    void arm();
    void fail(const std::string& why);

    bus_ptr bus_;
    boost::asio::posix::stream_descriptor fd_;
    boost::asio::steady_timer timer_;
    bool read_armed_ = false;
    bool write_armed_ = false;
    bool kick_posted_ = false;
    bool failed_ = false;
    callback_guard guard_;
};

// Issues an asynchronous method call whose reply (or error) goes to `on_reply`. The callback is
// owned by the call's floating slot and destroyed with it. Returns a negative errno if the call
// could not be queued (then on_reply is never called).
using reply_handler = std::function<void(sd_bus_message* reply, const sd_bus_error* error)>;
int call_async(sd_bus* bus, sd_bus_message* call, reply_handler on_reply);

} // namespace ondemand::helperd

#endif
