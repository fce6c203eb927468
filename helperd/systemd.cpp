// systemd_manager: the asynchronous calls and signal matches of systemd's manager API, and the
// description of a unit's state (see systemd.h). Must not include app_core.h, app_driver.h or
// server.h: it reports to whoever installed on_job_removed / on_active_state.
#include "systemd.h"

#include <fmt/format.h>

#include <csignal>
#include <cstring>
#include <stdexcept>
#include <sys/wait.h>

namespace ondemand::helperd {

namespace {

constexpr const char* destination = "org.freedesktop.systemd1";
constexpr const char* manager_path = "/org/freedesktop/systemd1";
constexpr const char* manager_interface = "org.freedesktop.systemd1.Manager";
constexpr const char* unit_interface = "org.freedesktop.systemd1.Unit";
constexpr const char* properties_interface = "org.freedesktop.DBus.Properties";

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

// Reads the value of the variant at the read pointer into `out` when its type is `type`;
// skips it otherwise.
template <typename T> int read_variant(sd_bus_message* m, char type, T* out) {
    char actual = 0;
    const char* contents = nullptr;
    int r = sd_bus_message_peek_type(m, &actual, &contents);
    if (r < 0) {
        return r;
    }
    const char want[2] = {type, '\0'};
    if (contents == nullptr || std::strcmp(contents, want) != 0) {
        return sd_bus_message_skip(m, "v");
    }
    if ((r = sd_bus_message_enter_container(m, 'v', want)) < 0 ||
        (r = sd_bus_message_read_basic(m, type, out)) < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

int read_string_variant(sd_bus_message* m, std::string& out) {
    const char* s = nullptr;
    int r = read_variant(m, 's', &s);
    if (r >= 0 && s != nullptr) {
        out = s;
    }
    return r;
}

// Reads an a{sv}, calling on_entry(name) positioned at each value (it must consume the
// variant) and skipping the values on_entry declines (returns 0).
template <typename F> int read_properties(sd_bus_message* m, F on_entry) {
    int r = sd_bus_message_enter_container(m, 'a', "{sv}");
    if (r < 0) {
        return r;
    }
    while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
        const char* name = nullptr;
        if ((r = sd_bus_message_read_basic(m, 's', &name)) < 0) {
            return r;
        }
        r = on_entry(std::string_view(name));
        if (r == 0) {
            r = sd_bus_message_skip(m, "v");
        }
        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0) {
            return r;
        }
    }
    if (r < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

} // namespace

std::string describe_unit_state(const unit_state& s) {
    std::string out = fmt::format("result {}", s.result.empty() ? "unknown" : s.result);
    switch (s.exec_main_code) {
    case CLD_EXITED:
        out += fmt::format(", main process exited with status {}", s.exec_main_status);
        break;
    case CLD_KILLED:
        out += fmt::format(", main process killed by {}", signal_name(s.exec_main_status));
        break;
    case CLD_DUMPED:
        out += fmt::format(", main process dumped core on {}", signal_name(s.exec_main_status));
        break;
    default:
        break;
    }
    if (!s.status_text.empty()) {
        constexpr std::size_t status_text_limit = 512;
        std::string_view text(s.status_text);
        while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) {
            text.remove_suffix(1);
        }
        out += ", status: ";
        for (char c : text.substr(0, status_text_limit)) {
            out.push_back(c >= ' ' && c < 0x7f ? c : ' ');
        }
    }
    return out;
}

std::string unit_object_path(std::string_view unit) {
    char* raw = nullptr;
    std::string name(unit);
    int r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", name.c_str(), &raw);
    if (r < 0) {
        return {};
    }
    std::unique_ptr<char, decltype(&free)> path(raw, &free);
    return path.get();
}

systemd_manager::systemd_manager(bus_driver& bus, bool peer_to_peer)
    : bus_(bus), peer_to_peer_(peer_to_peer) {}

void systemd_manager::subscribe() {
    sd_bus* bus = bus_.get();
    const char* sender = peer_to_peer_ ? nullptr : destination;
    sd_bus_slot* raw = nullptr;
    int r = sd_bus_match_signal(bus, &raw, sender, manager_path, manager_interface, "JobRemoved",
                                job_removed_thunk, this);
    if (r < 0) {
        throw std::runtime_error(fmt::format("cannot match JobRemoved: {}", std::strerror(-r)));
    }
    job_removed_slot_.reset(raw);
    std::string match = fmt::format("type='signal',{}interface='{}',member='PropertiesChanged',"
                                    "arg0='{}'",
                                    peer_to_peer_ ? "" : fmt::format("sender='{}',", destination),
                                    properties_interface, unit_interface);
    raw = nullptr;
    r = sd_bus_add_match(bus, &raw, match.c_str(), properties_changed_thunk, this);
    if (r < 0) {
        throw std::runtime_error(
            fmt::format("cannot match PropertiesChanged: {}", std::strerror(-r)));
    }
    properties_slot_.reset(raw);
    bus_error error;
    sd_bus_message* reply = nullptr;
    r = sd_bus_call_method(bus, destination, manager_path, manager_interface, "Subscribe",
                           error.get(), &reply, "");
    message_ptr reply_owner(reply);
    if (r < 0) {
        throw std::runtime_error(
            fmt::format("Subscribe failed: {}", describe_bus_error(error.get(), r)));
    }
}

std::string systemd_manager::unit_of_pid(pid_t pid) {
    sd_bus* bus = bus_.get();
    bus_error error;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_call_method(bus, destination, manager_path, manager_interface, "GetUnitByPID",
                               error.get(), &raw, "u", static_cast<std::uint32_t>(pid));
    message_ptr reply(raw);
    const char* path = nullptr;
    if (r < 0 || sd_bus_message_read(reply.get(), "o", &path) < 0) {
        return {};
    }
    bus_error error2;
    char* id = nullptr;
    r = sd_bus_get_property_string(bus, destination, path, unit_interface, "Id", error2.get(), &id);
    std::unique_ptr<char, decltype(&free)> owned(id, &free);
    return r >= 0 && id != nullptr ? std::string(id) : std::string();
}

int systemd_manager::job_removed_thunk(sd_bus_message* m, void* self, sd_bus_error* /*error*/) {
    auto* manager = static_cast<systemd_manager*>(self);
    std::uint32_t id = 0;
    const char* job = nullptr;
    const char* unit = nullptr;
    const char* result = nullptr;
    if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0) {
        return 0;
    }
    if (manager->on_job_removed) {
        manager->on_job_removed(job, unit, result);
    }
    return 0;
}

int systemd_manager::properties_changed_thunk(sd_bus_message* m, void* self,
                                              sd_bus_error* /*error*/) {
    auto* manager = static_cast<systemd_manager*>(self);
    const char* interface = nullptr;
    if (sd_bus_message_read_basic(m, 's', &interface) < 0 ||
        std::strcmp(interface, unit_interface) != 0) {
        return 0;
    }
    std::string state;
    bool seen = false;
    int r = read_properties(m, [&](std::string_view name) {
        if (name != "ActiveState") {
            return 0;
        }
        seen = true;
        int rr = read_string_variant(m, state);
        return rr < 0 ? rr : 1;
    });
    if (r < 0) {
        return 0;
    }
    if (!seen) {
        // Only invalidated? Then the value must be read.
        if (sd_bus_message_enter_container(m, 'a', "s") <= 0) {
            return 0;
        }
        const char* name = nullptr;
        while (sd_bus_message_read_basic(m, 's', &name) > 0) {
            seen = seen || std::strcmp(name, "ActiveState") == 0;
        }
        if (!seen) {
            return 0;
        }
    }
    const char* path = sd_bus_message_get_path(m);
    if (path != nullptr && manager->on_active_state) {
        manager->on_active_state(path, state);
    }
    return 0;
}

// Calls the manager's `method` with the unit name (and, for job methods, the mode "replace").
// Returns false, with a message in `failure`, when the call could not be sent.
bool systemd_manager::manager_call(const char* method, const std::string& unit, bool job_mode,
                                   reply_handler on_reply, std::string& failure) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, destination, manager_path,
                                           manager_interface, method);
    message_ptr call(raw);
    if (r >= 0) {
        r = job_mode ? sd_bus_message_append(call.get(), "ss", unit.c_str(), "replace")
                     : sd_bus_message_append(call.get(), "s", unit.c_str());
    }
    if (r >= 0) {
        r = call_async(bus_.get(), call.get(), std::move(on_reply));
    }
    if (r < 0) {
        failure = fmt::format("{}: {}", method, std::strerror(-r));
        return false;
    }
    bus_.kick();
    return true;
}

void systemd_manager::job_call(const char* method, const std::string& unit,
                               const stop_handler& done) {
    std::string failure;
    bool sent = manager_call(
        method, unit, true,
        [done](sd_bus_message* reply, const sd_bus_error* error) {
            if (error != nullptr && sd_bus_error_is_set(error)) {
                bool no_such =
                    sd_bus_error_has_name(error, "org.freedesktop.systemd1.NoSuchUnit") != 0;
                done({}, describe_bus_error(error, 0), no_such);
                return;
            }
            const char* job = nullptr;
            int rr = sd_bus_message_read(reply, "o", &job);
            if (rr < 0) {
                done({}, fmt::format("bad reply: {}", std::strerror(-rr)), false);
                return;
            }
            done(job, {}, false);
        },
        failure);
    if (!sent) {
        done({}, failure, false);
    }
}

void systemd_manager::start_unit(const std::string& unit, job_handler done) {
    job_call("StartUnit", unit,
             [done = std::move(done)](const std::string& job, const std::string& error, bool) {
                 done(job, error);
             });
}

void systemd_manager::stop_unit(const std::string& unit, const stop_handler& done) {
    job_call("StopUnit", unit, done);
}

void systemd_manager::unit_call(const char* method, const std::string& unit,
                                const done_handler& done) {
    std::string failure;
    bool sent = manager_call(
        method, unit, false,
        [done](sd_bus_message* /*reply*/, const sd_bus_error* error) {
            done(error != nullptr && sd_bus_error_is_set(error) ? describe_bus_error(error, 0)
                                                                : std::string());
        },
        failure);
    if (!sent) {
        done(failure);
    }
}

void systemd_manager::freeze_unit(const std::string& unit, const done_handler& done) {
    unit_call("FreezeUnit", unit, done);
}

void systemd_manager::thaw_unit(const std::string& unit, const done_handler& done) {
    unit_call("ThawUnit", unit, done);
}

void systemd_manager::read_unit_state(const std::string& unit, const state_handler& done) {
    std::string path = unit_object_path(unit);
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, destination, path.c_str(),
                                           properties_interface, "GetAll");
    message_ptr call(raw);
    if (r >= 0) {
        r = sd_bus_message_append(call.get(), "s", "");
    }
    if (r >= 0) {
        r = call_async(
            bus_.get(), call.get(), [done](sd_bus_message* reply, const sd_bus_error* error) {
                unit_state state;
                auto consumed = [](int rr) { return rr < 0 ? rr : 1; };
                if (error != nullptr && sd_bus_error_is_set(error)) {
                    done(state, describe_bus_error(error, 0));
                    return;
                }
                int rr = read_properties(reply, [&](std::string_view name) {
                    if (name == "LoadState") {
                        return consumed(read_string_variant(reply, state.load_state));
                    }
                    if (name == "ActiveState") {
                        return consumed(read_string_variant(reply, state.active_state));
                    }
                    if (name == "SubState") {
                        return consumed(read_string_variant(reply, state.sub_state));
                    }
                    if (name == "Result") {
                        return consumed(read_string_variant(reply, state.result));
                    }
                    if (name == "StatusText") {
                        return consumed(read_string_variant(reply, state.status_text));
                    }
                    if (name == "ExecMainCode") {
                        return consumed(read_variant(reply, 'i', &state.exec_main_code));
                    }
                    if (name == "ExecMainStatus") {
                        return consumed(read_variant(reply, 'i', &state.exec_main_status));
                    }
                    if (name == "MemoryCurrent") {
                        return consumed(read_variant(reply, 't', &state.memory_current));
                    }
                    if (name == "MainPID") {
                        return consumed(read_variant(reply, 'u', &state.main_pid));
                    }
                    if (name == "ControlGroup") {
                        return consumed(read_string_variant(reply, state.control_group));
                    }
                    return 0;
                });
                if (rr < 0) {
                    done(state, fmt::format("bad reply: {}", std::strerror(-rr)));
                    return;
                }
                done(state, {});
            });
    }
    if (r < 0) {
        done({}, fmt::format("GetAll: {}", std::strerror(-r)));
        return;
    }
    bus_.kick();
}

} // namespace ondemand::helperd
