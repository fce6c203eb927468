// `ondemandctl prepare`: the bundles of KIND=oci apps (units/ondemand-oci@.service), made ahead of
// time so that a cold start runs only crun: OCI_DIR/APP is a symlink to OCI_DIR/.APP.<stamp>,
// which holds rootfs/ (the image's files, copied from `podman image mount`), config.json (the
// OCI runtime spec ondemandctl writes) and image-id (the image it was made from). A new bundle
// is built beside the old one and swapped in by renaming the symlink; the previous bundle is
// kept (an app still running uses it) and older ones are removed. See docs/units.md.
#ifndef ONDEMAND_CTL_PREPARE_H
#define ONDEMAND_CTL_PREPARE_H

#include "app_file.h"

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::ctl {

struct oci_paths {
    std::string oci_dir;    // the bundles: OCI_DIR/APP (/var/lib/ondemand/oci = %S/ondemand/oci)
    std::string socket_dir; // the apps' socket directories: SOCKET_DIR/APP (%t/ondemand/apps)
    std::string podman_env; // KEY=VALUE lines for podman (the units' podman.env); may be absent
};

// What a bundle needs from `podman image inspect`.
struct image_info {
    std::string id;
    std::vector<std::string> env, entrypoint, cmd;
    std::string workdir, user;
};

// Parses `podman image inspect IMAGE`'s JSON (an array of one object); nothing on a bad answer.
std::optional<image_info> parse_image_inspect(std::string_view json);

// The bundle's config.json for `app` (KIND=oci) made from `img`: the command (CMD split at
// white space as systemd splits $CMD, else the image's entrypoint and command), its environment
// plus ONDEMAND_SOCKET, own mount/PID/IPC/UTS/network namespaces, a read-only root, tmpfs on /tmp
// and /run, SOCKET_DIR/APP at /run/ondemand, no cgroup settings (the unit's cgroup is used).
// Throws std::runtime_error when it cannot (no command, a user name instead of a number).
nlohmann::json oci_config(const app_config& app, const image_info& img,
                          const std::string& socket_dir);

enum class bundle_state { current, missing, stale };
struct bundle_check {
    bundle_state state = bundle_state::missing;
    std::string why; // for missing and stale
};

// Whether OCI_DIR/APP matches the image (podman image inspect) and the app file.
bundle_check check_bundle(const app_config& app, const oci_paths& paths);

// Makes or refreshes OCI_DIR/APP; says what it did on `out` ("APP: prepared ...", "APP: up to
// date"). Throws std::runtime_error with the reason (e.g. the image is missing).
void prepare_bundle(const app_config& app, const oci_paths& paths, std::ostream& out);

// `ondemandctl prepare [APP...]`: prepare_bundle() for the named KIND=oci apps of `apps_dir`, or
// for all of them; 0 when every one is prepared, 1 otherwise (reasons on `err`).
int prepare_apps(const std::string& apps_dir, const std::vector<std::string>& names,
                 const oci_paths& paths, std::ostream& out, std::ostream& err);

// `ondemandctl check`'s warnings: each KIND=oci app whose bundle is missing or stale.
std::vector<diagnostic> bundle_warnings(const std::vector<app_config>& apps,
                                        const oci_paths& paths);

} // namespace ondemand::ctl

#endif
