// unit_usage: what ondemandctl reads of an app's unit straight from systemd (it runs on the host,
// as root or as the manager's user): ActiveState, MemoryCurrent and CPUUsageNSec. Blocking
// sd-bus property reads on the bus helperd would use (bus_address, helperd/sdbus.h), so it
// works whether helperd runs or not. See docs/units.md, "ondemandctl status".
#ifndef ONDEMAND_CTL_UNIT_USAGE_H
#define ONDEMAND_CTL_UNIT_USAGE_H

#include "sdbus.h"

#include <cstdint>
#include <optional>
#include <string>

namespace ondemand::ctl {

struct unit_usage {
    std::string active_state;            // empty when unreadable
    std::optional<std::uint64_t> memory; // MemoryCurrent, bytes; none when systemd has none
    std::optional<std::uint64_t> cpu_ns; // CPUUsageNSec
};

// "user", "system" (the default), or a D-Bus address ("unix:path=..."): which bus to read from.
helperd::bus_address parse_bus_choice(const std::string& choice);

class unit_reader {
  public:
    // Opens the bus; throws std::runtime_error ("cannot open the system bus: ...").
    explicit unit_reader(const helperd::bus_address& where);
    // The unit's state and usage; fields it cannot read stay empty (never throws for a unit).
    unit_usage read(const std::string& unit);

  private:
    helperd::bus_ptr bus_;
};

// Reloads the manager's configuration (daemon-reload: org.freedesktop.systemd1.Manager.Reload,
// which answers once the reload is done). Throws std::runtime_error.
void reload_systemd(const helperd::bus_address& where);

} // namespace ondemand::ctl

#endif
