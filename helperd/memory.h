// memory: how much memory a running app's unit uses, pushed to the nginx workers that ask for it
// (SUBSCRIBE memory -> MEMORY app bytes) for the module's ondemand_max_memory
// (docs/helperd.md, "Memory of running apps"). The unit's MemoryCurrent when systemd has one (the
// memory controller is on for the unit's cgroup); otherwise the sum of the proportional set sizes
// (Pss of /proc/PID/smaps_rollup, else VmRSS of /proc/PID/status) of every process in the unit's
// cgroup and the cgroups below it.
// It may include systemd.h, guard.h and log.h, never app_core.h, app_driver.h or server.h: the
// server tells it which apps run and sends what it reports.
#ifndef ONDEMAND_HELPERD_MEMORY_H
#define ONDEMAND_HELPERD_MEMORY_H

#include "guard.h"
#include "systemd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ondemand::helperd {

// systemd's MemoryCurrent when it has no figure ("[not set]": no memory controller).
inline constexpr std::uint64_t memory_not_set = UINT64_MAX;

// The "Pss:" line of /proc/PID/smaps_rollup (kB), in bytes; nullopt when there is none.
std::optional<std::uint64_t> parse_smaps_pss(std::string_view smaps_rollup);
// The "VmRSS:" line of /proc/PID/status (kB), in bytes; nullopt when there is none (a kernel
// thread, a zombie).
std::optional<std::uint64_t> parse_status_rss(std::string_view status);
// The cgroup2 path of /proc/PID/cgroup (its "0::PATH" line), as the reader's cgroup namespace
// sees it; nullopt when there is none.
std::optional<std::string> parse_cgroup2_path(std::string_view proc_cgroup);

// Where this process sees the cgroup2 hierarchy: the mount point and the cgroup it shows (the
// root field of /proc/self/mountinfo).
struct cgroup2_mount {
    std::string root;
    std::string mountpoint;
};
std::optional<cgroup2_mount> parse_cgroup2_mount(std::string_view mountinfo);

// The directory of the unit's cgroup as this process sees it. `pid_cgroup` is the cgroup of the
// unit's main process as this process reads it (/proc/PID/cgroup), `control_group` the unit's
// ControlGroup as its manager reports it, relative to the manager's cgroup namespace (a manager
// in a container or a sandbox sees less than helperd). The unit's cgroup is the part of
// `pid_cgroup` that ends with `control_group` (the main process may be in a cgroup below it);
// without a `control_group` it is `pid_cgroup` itself.
std::optional<std::string> unit_cgroup_dir(const cgroup2_mount& mount, std::string_view pid_cgroup,
                                           std::string_view control_group);

// The memory of the processes in `dir` and every cgroup below it, in bytes: the sum of their Pss
// (their VmRSS when smaps_rollup cannot be read). nullopt when `dir` cannot be read.
std::optional<std::uint64_t> cgroup_memory(const std::string& dir);

// The figure to report for a unit: MemoryCurrent when set, else `fallback()` (the cgroup's
// processes); nullopt when neither is known.
std::optional<std::uint64_t>
unit_memory(std::uint64_t memory_current,
            const std::function<std::optional<std::uint64_t>()>& fallback);

// Samples, every `interval`, the memory of each running app's unit and reports it. Idle until
// enable() (the first SUBSCRIBE memory).
class memory_sampler {
  public:
    using app_unit = std::pair<std::string, std::string>; // app, unit
    using list_fn = std::function<std::vector<app_unit>()>;
    using report_fn = std::function<void(const std::string& app, std::uint64_t bytes)>;

    static constexpr std::chrono::milliseconds default_interval{500};

    memory_sampler(boost::asio::io_context& io, unit_manager& units, list_fn list, report_fn report,
                   std::chrono::milliseconds interval = default_interval);
    memory_sampler(const memory_sampler&) = delete;
    memory_sampler& operator=(const memory_sampler&) = delete;
    ~memory_sampler();

    void enable();

    // The figure of one unit from its state (MemoryCurrent, MainPID, ControlGroup).
    static std::optional<std::uint64_t> measure(const unit_state& state);

  private:
    void arm();
    void tick();

    unit_manager& units_;
    list_fn list_;
    report_fn report_;
    std::chrono::milliseconds interval_;
    boost::asio::steady_timer timer_;
    bool enabled_ = false;
    callback_guard guard_;
};

} // namespace ondemand::helperd

#endif
