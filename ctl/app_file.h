// App files: /etc/ondemand/apps/NAME.conf, one per app. The unit templates read them as systemd
// EnvironmentFile= (KEY=VALUE lines), and ondemandctl reads the same files for `check` and
// `gen-nginx`. The format and every key are documented in docs/units.md.
#ifndef ONDEMAND_CTL_APP_FILE_H
#define ONDEMAND_CTL_APP_FILE_H

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::ctl {

enum class severity { error, warning };

// One problem in one file: "FILE:LINE: KEY: message" (line 0 and empty key: the whole file);
// a warning reads "FILE:LINE: KEY: warning: message" and does not make the file invalid.
struct diagnostic {
    std::string file;
    unsigned line = 0;
    std::string key;
    std::string message;
    severity level = severity::error;

    bool is_error() const { return level == severity::error; }
    std::string to_string() const;
};

// How many of `ds` are errors (not warnings).
std::size_t count_errors(const std::vector<diagnostic>& ds);

enum class app_kind { podman, podman_simple, podman_systemd, docker, exec, oci };

std::string_view kind_name(app_kind k); // "podman", "podman-simple", ...
std::optional<app_kind> parse_kind(std::string_view name);
std::string unit_template(app_kind k); // "ondemand-" + kind_name: "ondemand-podman", ...

struct app_config {
    std::string name; // from the file name
    std::string file;
    app_kind kind = app_kind::podman;
    std::string image, cmd, args, exec, pull;
    std::vector<std::string> hosts;
    unsigned hosts_line = 0; // where HOSTS is set, for diagnostics
    std::string ready = "connect";
    std::string start_timeout; // nginx time syntax; empty: the module's default
    std::string idle_timeout;
    std::string queue;
    std::string failed_status;
    // The app's identity and limits (issue #15; ctl/app_tenancy.h): unit settings that
    // `ondemandctl apply` writes into a drop-in. Empty: the template's default.
    std::string user;             // USER (exec): User= instead of DynamicUser=yes
    std::string workdir;          // WORKDIR (exec): WorkingDirectory=
    std::string memory_max;       // MEMORY_MAX: MemoryMax=
    std::string cpu_weight;       // CPU_WEIGHT: CPUWeight=
    std::string network = "none"; // NETWORK: none, host, or a podman/docker network's name

    std::string unit() const; // ondemand-KIND@NAME.service
};

struct parse_result {
    std::optional<app_config> app;  // set when there is no error (warnings allowed)
    std::vector<diagnostic> errors; // errors and warnings
};

// Parses one app file's text; `path` names the file in diagnostics, and its stem is the app name.
parse_result parse_app_file(const std::string& path, std::string_view text);

// Reads and parses every *.conf in `dir` (sorted by name); also reports a host name claimed by
// two apps. Apps with errors are left out of `apps`.
struct dir_result {
    std::vector<app_config> apps;
    std::vector<diagnostic> errors;
};
dir_result load_apps_dir(const std::filesystem::path& dir);

// nginx's time syntax (ngx_parse_time): "0", "30", "500ms", "30s", "5m", "1h", "1m30s", "1m30";
// units y M w d h m s ms, each at most once, in that order; a last number without a unit is
// seconds.
bool valid_nginx_time(std::string_view t);
// The milliseconds a valid_nginx_time() string stands for, as nginx's ngx_parse_time(t, 0)
// reads it (a number without a unit is seconds; M is 30 days, y 365); nothing when it is not
// valid. Saturates at UINT64_MAX.
std::optional<std::uint64_t> nginx_time_ms(std::string_view t);
// A host name for nginx's `map ... { hostnames; }` (the parser lower-cases HOSTS before, and
// load_apps_dir() reports ".example.com" against "example.com"): labels of [A-Za-z0-9-], optionally
// with a leading "*." or a leading ".".
bool valid_host_name(std::string_view h);

} // namespace ondemand::ctl

#endif
