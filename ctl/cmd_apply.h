// `ondemandctl apply`: the app files' unit settings (USER, WORKDIR, MEMORY_MAX, CPU_WEIGHT,
// NETWORK of exec apps) as one drop-in per app, stale drop-ins removed, systemd reloaded; and
// the apps' socket directory made reachable by nginx's group only. See ctl/app_tenancy.h and
// docs/units.md, "Each app is a tenant".
#ifndef ONDEMAND_CTL_CMD_APPLY_H
#define ONDEMAND_CTL_CMD_APPLY_H

#include <string>

namespace ondemand::ctl {

struct apply_options {
    std::string apps_dir;    // the app files
    std::string unit_dir;    // where the drop-ins go: UNIT_DIR/UNIT.d/50-ondemand-app.conf
    std::string socket_dir;  // the apps' socket directories' parent: made 0750 root:nginx_group
    std::string nginx_group; // nginx's workers' group (www-data on Debian)
    std::string bus;         // systemd's bus for the reload: system, user or an address
    bool reload = true;      // reload systemd when a drop-in changed
};

// Prints what it did on stderr; returns the exit status (0, or 1 when an app file has an
// error: then nothing is changed). Throws std::runtime_error on an I/O or D-Bus error.
int cmd_apply(const apply_options& o);

} // namespace ondemand::ctl

#endif
