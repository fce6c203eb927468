// `ondemandctl gen-nginx`: the nginx include for a directory of app files — one upstream per app
// (its socket, its unit and its `ondemand` parameters) and a `map $host $VAR` for host routing.
#ifndef ONDEMAND_CTL_GEN_NGINX_H
#define ONDEMAND_CTL_GEN_NGINX_H

#include "app_file.h"

#include <string>
#include <vector>

namespace ondemand::ctl {

struct gen_options {
    std::string socket_dir = "/run/ondemand/apps"; // the app's socket: socket_dir/NAME/app.sock
    std::string variable = "app";                  // map $host $app { ... }
    std::string source;                            // named in the header comment
};

std::string gen_nginx(const std::vector<app_config>& apps, const gen_options& opts);

// A whole nginx.conf for `ondemandctl check`'s `nginx -t -p DIR -c DIR/nginx.conf`: loads
// `module`, keeps every path under `dir` (error.log, nginx.pid, tmp/), and includes
// DIR/apps.conf (gen_nginx's output) in http{} with a server routing by $variable (as
// scripts/nginx-skeleton writes for the tests).
std::string nginx_check_conf(const std::string& dir, const std::string& module,
                             const std::string& helper_socket, const std::string& variable);

} // namespace ondemand::ctl

#endif
