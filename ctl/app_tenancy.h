// Each app is a tenant (issue #15): the app-file keys USER, WORKDIR, MEMORY_MAX, CPU_WEIGHT and
// NETWORK give it its own identity and limits. Most of them are unit settings (User=,
// WorkingDirectory=, MemoryMax=, CPUWeight=, PrivateNetwork=), which an EnvironmentFile= cannot
// set: `ondemandctl apply` writes them into one drop-in per app,
// UNIT_DIR/ondemand-KIND@NAME.service.d/50-ondemand-app.conf, and removes the drop-ins of apps
// and keys that are gone. A container's NETWORK is the exception: the templates pass it to
// `podman run --network` / `docker run --network` from the app file's environment. Also here:
// the file-mode warnings of `ondemandctl check` (app files are root-equivalent and may hold
// secrets). docs/units.md documents all of it.
#ifndef ONDEMAND_CTL_APP_TENANCY_H
#define ONDEMAND_CTL_APP_TENANCY_H

#include "app_file.h"

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::ctl {

// The drop-in's file name inside UNIT.d/.
inline constexpr std::string_view dropin_name = "50-ondemand-app.conf";

// Checks the tenancy keys of an app file and fills app.user, .workdir, .memory_max,
// .cpu_weight, .network (app.kind must be known). `get` gives a key's value (nullptr when
// unset), `at` its line; `report` takes each problem (line, key, message, severity).
// Also refuses --network/--net in ARGS (NETWORK= sets it; podman refuses two networks).
void parse_tenancy(
    app_config& app, const std::function<const std::string*(std::string_view)>& get,
    const std::function<unsigned(std::string_view)>& at,
    const std::function<void(unsigned, std::string_view, std::string, severity)>& report);

// The name of an exec app's dynamic user (User= with DynamicUser=yes): "ondemand-NAME" when
// NAME is 1-22 of [a-z0-9_-], else "ondemand-" + up to 13 characters of NAME made valid + "-" +
// 8 hex digits of a hash of NAME (a dynamic user's name must be [a-z_][a-z0-9_-]*, at most 31).
// Without it systemd would name every instance's user after the template, "ondemand-exec": all
// exec apps would share one uid.
std::string dynamic_user_name(std::string_view app_name);

// The drop-in `ondemandctl apply` writes for `app`; empty when the app needs none (a container
// app with every key at the template's default; an exec app always gets its own user).
std::string unit_dropin(const app_config& app);

struct apply_result {
    std::vector<std::string> written;   // drop-ins created or changed
    std::vector<std::string> removed;   // stale drop-ins removed (app or keys gone)
    std::vector<std::string> unchanged; // already as wanted
    bool changed() const { return !written.empty() || !removed.empty(); }
};

// Makes UNIT_DIR's ondemand drop-ins match `apps`: writes each app's unit_dropin() (atomically,
// 0644, only when it differs), and removes every UNIT_DIR/ondemand-*.service.d/50-ondemand-app.conf
// that no app wants (then the directory, when empty). Throws std::runtime_error on an I/O error.
apply_result apply_dropins(const std::vector<app_config>& apps,
                           const std::filesystem::path& unit_dir);

// `check`'s warnings about drop-ins `apply` has not written yet (or that an edit changed): one per
// app whose UNIT_DIR/UNIT.d/50-ondemand-app.conf differs from unit_dropin(), at the app file.
std::vector<diagnostic> dropin_warnings(const std::vector<app_config>& apps,
                                        const std::filesystem::path& unit_dir);

// `check`'s warnings about who may read and write app files: a file writable by its group or
// by others, readable by others, or not owned by root; the directory readable or searchable by
// others (it should be 0750). Nothing when the file cannot be stat()ed.
std::vector<diagnostic> file_mode_warnings(const std::filesystem::path& path, bool is_dir);

} // namespace ondemand::ctl

#endif
