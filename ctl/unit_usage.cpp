#include "unit_usage.h"

#include "systemd.h"

#include <systemd/sd-bus.h>

#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string_view>

namespace ondemand::ctl {

namespace {

constexpr const char* destination = "org.freedesktop.systemd1";

// The interface that carries a unit type's cgroup properties (MemoryCurrent, CPUUsageNSec);
// nullptr for types without a cgroup (target, timer, path, device, automount).
const char* cgroup_interface(std::string_view unit) {
    auto ends = [&](std::string_view s) {
        return unit.size() > s.size() && unit.substr(unit.size() - s.size()) == s;
    };
    if (ends(".service")) {
        return "org.freedesktop.systemd1.Service";
    }
    if (ends(".socket")) {
        return "org.freedesktop.systemd1.Socket";
    }
    if (ends(".scope")) {
        return "org.freedesktop.systemd1.Scope";
    }
    if (ends(".slice")) {
        return "org.freedesktop.systemd1.Slice";
    }
    if (ends(".mount")) {
        return "org.freedesktop.systemd1.Mount";
    }
    if (ends(".swap")) {
        return "org.freedesktop.systemd1.Swap";
    }
    return nullptr;
}

// systemd says "no value" with UINT64_MAX (accounting off, or the unit has no cgroup).
std::optional<std::uint64_t> read_u64(sd_bus* bus, const std::string& path, const char* iface,
                                      const char* name) {
    helperd::bus_error error;
    std::uint64_t v = 0;
    int r = sd_bus_get_property_trivial(bus, destination, path.c_str(), iface, name, error.get(),
                                        't', &v);
    if (r < 0 || v == std::numeric_limits<std::uint64_t>::max()) {
        return std::nullopt;
    }
    return v;
}

} // namespace

helperd::bus_address parse_bus_choice(const std::string& choice) {
    helperd::bus_address a;
    if (choice == "user") {
        a.type = helperd::bus_address::kind::user;
    } else if (choice.empty() || choice == "system") {
        a.type = helperd::bus_address::kind::system;
    } else {
        a.type = helperd::bus_address::kind::address;
        a.address = choice;
    }
    return a;
}

unit_reader::unit_reader(const helperd::bus_address& where) : bus_(helperd::open_bus(where)) {}

unit_usage unit_reader::read(const std::string& unit) {
    unit_usage u;
    std::string path = helperd::unit_object_path(unit);
    if (path.empty()) {
        return u;
    }
    helperd::bus_error error;
    char* raw = nullptr;
    int r = sd_bus_get_property_string(bus_.get(), destination, path.c_str(),
                                       "org.freedesktop.systemd1.Unit", "ActiveState", error.get(),
                                       &raw);
    std::unique_ptr<char, decltype(&std::free)> state(raw, &std::free);
    if (r >= 0 && state) {
        u.active_state = state.get();
    }
    if (const char* iface = cgroup_interface(unit)) {
        u.memory = read_u64(bus_.get(), path, iface, "MemoryCurrent");
        u.cpu_ns = read_u64(bus_.get(), path, iface, "CPUUsageNSec");
    }
    return u;
}

void reload_systemd(const helperd::bus_address& where) {
    helperd::bus_ptr bus = helperd::open_bus(where);
    helperd::bus_error error;
    sd_bus_message* reply = nullptr;
    int r =
        sd_bus_call_method(bus.get(), destination, "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "Reload", error.get(), &reply, "");
    sd_bus_message_unref(reply);
    if (r < 0) {
        throw std::runtime_error("systemd's Reload failed: " +
                                 helperd::describe_bus_error(error.get(), r));
    }
}

} // namespace ondemand::ctl
