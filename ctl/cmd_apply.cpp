#include "cmd_apply.h"

#include "app_file.h"
#include "app_tenancy.h"
#include "unit_usage.h"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace ondemand::ctl {

namespace {

// The apps' sockets are reachable through DIR/NAME/app.sock: DIR is 0750 root:GROUP so that
// nginx's workers (and helperd, which has the group as a supplementary one) can reach them and
// no other local user can, whatever the modes inside (each app's own directory is 0755).
void secure_socket_dir(const std::string& dir, const std::string& group) {
    struct group* gr = ::getgrnam(group.c_str()); // NOLINT(concurrency-mt-unsafe): one thread
    if (gr == nullptr) {
        throw std::runtime_error("no group " + group + " (--nginx-group: nginx's workers' group)");
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        throw std::runtime_error("cannot create " + dir + ": " + ec.message());
    }
    if (::chown(dir.c_str(), 0, gr->gr_gid) != 0 || ::chmod(dir.c_str(), 0750) != 0) {
        throw std::runtime_error("cannot make " + dir + " 0750 root:" + group + ": " +
                                 std::strerror(errno));
    }
}

} // namespace

int cmd_apply(const apply_options& o) {
    dir_result d = load_apps_dir(o.apps_dir);
    for (const auto& e : d.errors) {
        std::cerr << e.to_string() << "\n";
    }
    if (count_errors(d.errors) != 0) {
        std::cerr << "apply: nothing changed: fix the app files first (ondemandctl check)\n";
        return 1;
    }
    secure_socket_dir(o.socket_dir, o.nginx_group);
    std::cerr << "apply: " << o.socket_dir << ": 0750 root:" << o.nginx_group << "\n";
    apply_result r = apply_dropins(d.apps, o.unit_dir);
    for (const auto& f : r.written) {
        std::cerr << "apply: wrote " << f << "\n";
    }
    for (const auto& f : r.removed) {
        std::cerr << "apply: removed " << f << "\n";
    }
    std::cerr << "apply: " << r.written.size() << " written, " << r.removed.size() << " removed, "
              << r.unchanged.size() << " unchanged\n";
    if (!r.changed()) {
        return 0;
    }
    if (!o.reload) {
        std::cerr << "apply: now run systemctl daemon-reload\n";
        return 0;
    }
    reload_systemd(parse_bus_choice(o.bus));
    std::cerr << "apply: systemd reloaded; a running app gets the change at its next start\n";
    return 0;
}

} // namespace ondemand::ctl
