// `ondemandctl check`'s last step: the include gen-nginx would write for the apps, inside a
// minimal nginx.conf that loads the module, through `nginx -t`.
#pragma once

#include "app_file.h"
#include "gen_nginx.h"

#include <string>
#include <vector>

namespace ondemand::ctl {

struct nginx_check_options {
    std::string module;         // the module's .so
    std::string nginx;          // the nginx binary
    gen_options gen;            // as gen-nginx would write the include
    std::string helperd_socket; // for ondemand_helper
    bool required = false;      // a missing module or nginx is an error, not a skip
};

// 0: nginx accepts it; 1: nginx refuses it (its output printed to stderr) or, when required,
// it cannot run; -1: skipped (no module or no nginx; a note printed).
int nginx_check(const std::vector<app_config>& apps, const nginx_check_options& o);

} // namespace ondemand::ctl
