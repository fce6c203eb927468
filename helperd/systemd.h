// helperd's client of systemd's manager API (org.freedesktop.systemd1) over a bus_driver:
// asynchronous StartUnit/StopUnit/property reads, and the JobRemoved and unit
// PropertiesChanged(ActiveState) signals.
// It knows no app and no client: it may include sdbus.h and log.h only, never app_core.h,
// app_driver.h or server.h.
#ifndef ONDEMAND_HELPERD_SYSTEMD_H
#define ONDEMAND_HELPERD_SYSTEMD_H

#include "sdbus.h"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace ondemand::helperd {

// What helperd reads of a unit to explain a failure.
struct unit_state {
    std::string load_state;
    std::string active_state;
    std::string sub_state;
    std::string result;     // the service's Result ("success", "exit-code", "signal", ...)
    int exec_main_code = 0; // CLD_EXITED, CLD_KILLED, CLD_DUMPED, or 0 if it never ran
    int exec_main_status = 0;
    std::string status_text; // the service's StatusText (sd_notify STATUS=...), often empty
    // For the memory sampler (memory.h): MemoryCurrent (UINT64_MAX: not set), MainPID (0:
    // none) and ControlGroup (as the manager sees it).
    std::uint64_t memory_current = UINT64_MAX;
    std::uint32_t main_pid = 0;
    std::string control_group;
};

// "result exit-code, main process exited with status 3" and the like, with the unit's status
// text when it has one: "..., status: image x not found". One line (control characters become
// spaces) and the status text is cut at 512 bytes.
std::string describe_unit_state(const unit_state& state);

// The unit's object path, as systemd derives it from the name.
std::string unit_object_path(std::string_view unit);

// What the app driver asks of the service manager: asynchronous unit calls and the two
// signals it reacts to. systemd_manager is the real one; the unit tests use a fake.
class unit_manager {
  public:
    unit_manager() = default;
    unit_manager(const unit_manager&) = delete;
    unit_manager& operator=(const unit_manager&) = delete;
    virtual ~unit_manager() = default;

    // `error` is empty on success; then `job` is the job's object path.
    using job_handler = std::function<void(const std::string& job, const std::string& error)>;
    virtual void start_unit(const std::string& unit, job_handler done) = 0;
    // `no_such_unit` tells the error apart that means "not loaded".
    using stop_handler =
        std::function<void(const std::string& job, const std::string& error, bool no_such_unit)>;
    virtual void stop_unit(const std::string& unit, const stop_handler& done) = 0;

    // FreezeUnit / ThawUnit: systemd answers once the unit's cgroup is frozen / thawed.
    using done_handler = std::function<void(const std::string& error)>;
    virtual void freeze_unit(const std::string& unit, const done_handler& done) = 0;
    virtual void thaw_unit(const std::string& unit, const done_handler& done) = 0;

    using state_handler = std::function<void(const unit_state& state, const std::string& error)>;
    // All properties of the unit (Properties.GetAll with no interface), reduced to unit_state.
    virtual void read_unit_state(const std::string& unit, const state_handler& done) = 0;

    // JobRemoved(id, job, unit, result)
    std::function<void(std::string_view job, std::string_view unit, std::string_view result)>
        on_job_removed;
    // A unit's ActiveState changed (path = the unit's object path). `state` is empty when
    // systemd only invalidated the property (read it with read_unit_state then).
    std::function<void(std::string_view path, std::string_view state)> on_active_state;
};

class systemd_manager final : public unit_manager {
  public:
    systemd_manager(bus_driver& bus, bool peer_to_peer);

    // Installs the signal matches and calls Subscribe. Blocking: call before the event loop
    // serves anyone. Throws std::runtime_error on failure.
    void subscribe();

    void start_unit(const std::string& unit, job_handler done) override;
    void stop_unit(const std::string& unit, const stop_handler& done) override;
    void freeze_unit(const std::string& unit, const done_handler& done) override;
    void thaw_unit(const std::string& unit, const done_handler& done) override;
    void read_unit_state(const std::string& unit, const state_handler& done) override;

    // The unit the process `pid` runs in ("" when none). Blocking (GetUnitByPID + the unit's
    // Id): for start-up only.
    std::string unit_of_pid(pid_t pid);

  private:
    bool manager_call(const char* method, const std::string& unit, bool job_mode,
                      reply_handler on_reply, std::string& failure);
    void job_call(const char* method, const std::string& unit, const stop_handler& done);
    void unit_call(const char* method, const std::string& unit, const done_handler& done);
    static int job_removed_thunk(sd_bus_message* m, void* self, sd_bus_error* error);
    static int properties_changed_thunk(sd_bus_message* m, void* self, sd_bus_error* error);

    bus_driver& bus_;
    bool peer_to_peer_;
    slot_ptr job_removed_slot_;
    slot_ptr properties_slot_;
};

} // namespace ondemand::helperd

#endif
