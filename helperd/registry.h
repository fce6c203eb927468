// registry: helperd's own list of the apps it serves (apps_dir, --apps-dir): the app files
// /etc/ondemand/apps/NAME.conf, read with ondemandctl's parser (ctl/app_file.h, one format in
// one place), and the checks of a request against them: an app helperd does not know is
// refused, and so is a START whose unit, socket or ready mode are not the file's; the start
// timeout is the file's START_TIMEOUT, never the client's. Without a registry helperd trusts
// its clients (docs/helperd.md, "App registry").
// No I/O but reading the directory (load_registry); must not include any other helperd header.
#ifndef ONDEMAND_HELPERD_REGISTRY_H
#define ONDEMAND_HELPERD_REGISTRY_H

#include "ondemand_protocol.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::helperd {

// What helperd takes from one app file.
struct registered_app {
    std::string name;
    std::string file;   // the app file, for refusals: "/etc/ondemand/apps/blog.conf"
    std::string unit;   // ondemand-KIND@NAME.service
    std::string socket; // app_socket_dir/NAME/app.sock
    std::string ready;  // READY=, default "connect"
    // START_TIMEOUT=, default 30s (the module's default), saturated to the protocol's range.
    std::chrono::milliseconds start_timeout{30000};
};

class app_registry {
  public:
    static constexpr std::chrono::milliseconds default_start_timeout{30000};

    app_registry() = default;
    explicit app_registry(std::vector<registered_app> apps);

    const registered_app* find(std::string_view name) const;
    std::size_t size() const { return apps_.size(); }

    // The refusal of a request line under this registry (the details of `FAILED app gen
    // not-allowed DETAILS`, or of `ERROR` for USE), or nothing when it is in order:
    //   unknown app NAME                                 (START, WAIT, STOP, FREEZE, USE)
    //   START disagrees with FILE: unit U (START has X)  (unit, socket, ready: the first that
    //                                                      differs is named)
    //   STOP disagrees with FILE: unit U (STOP has X)    (STOP, FREEZE: the unit)
    // Other verbs are never refused.
    std::optional<std::string> refusal(const proto::message& m) const;

  private:
    std::map<std::string, registered_app, std::less<>> apps_;
};

// The registry read from `apps_dir` (every *.conf, with ctl::load_apps_dir). An app file with
// errors is left out; every problem is one line of `problems` ("FILE:LINE: KEY: message").
struct registry_load {
    app_registry registry;
    std::vector<std::string> problems;
    bool read = false; // the directory was read (its problems are then the app files')
};
registry_load load_registry(const std::filesystem::path& apps_dir, const std::string& socket_dir);

// The directory of the apps' sockets for the manager helperd talks to: the templates'
// RuntimeDirectory=ondemand/apps/%i, i.e. %t/ondemand/apps: /run/ondemand/apps under the
// system manager, $XDG_RUNTIME_DIR/ondemand/apps under a user manager (`user`).
std::string default_app_socket_dir(bool user);

} // namespace ondemand::helperd

#endif
