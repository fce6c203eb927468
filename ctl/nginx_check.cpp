// `ondemandctl check`'s last step: the generated include through a real `nginx -t`.
#include "nginx_check.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace ondemand::ctl {

namespace fs = std::filesystem;

int nginx_check(const std::vector<app_config>& apps, const nginx_check_options& o) {
    const std::string& module = o.module;
    const std::string& nginx = o.nginx;
    std::error_code ec;
    const char* missing = !fs::exists(module, ec)  ? "no module at "
                          : !fs::exists(nginx, ec) ? "no nginx at "
                                                   : nullptr;
    if (missing != nullptr) {
        std::string what = missing + (missing[3] == 'm' ? module : nginx);
        std::cerr << "check: nginx -t " << (o.required ? "impossible: " : "skipped: ") << what
                  << (o.required ? "" : " (--nginx-module SO or $ONDEMAND_NGINX_MODULE)") << "\n";
        return o.required ? 1 : -1;
    }
    std::string tmpl = (fs::temp_directory_path() / "ondemandctl-check.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("cannot make a temporary directory: " +
                                 std::string(std::strerror(errno)));
    }
    const std::string dir = tmpl;
    fs::create_directories(dir + "/tmp");
    std::ofstream(dir + "/apps.conf") << gen_nginx(apps, o.gen);
    std::ofstream(dir + "/nginx.conf") << nginx_check_conf(dir, module, o.helperd_socket, "app");
    std::string log = dir + "/nginx-t.out";
    pid_t pid = ::fork();
    if (pid == 0) {
        // nginx's output (stdout and stderr) to the log file, for a refusal's report
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0 && ::dup2(fd, 1) >= 0 && ::dup2(fd, 2) >= 0) {
            std::string conf = dir + "/nginx.conf";
            ::execl(nginx.c_str(), nginx.c_str(), "-t", "-q", "-p", dir.c_str(), "-c", conf.c_str(),
                    static_cast<char*>(nullptr));
        }
        ::_exit(127);
    }
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) < 0) {
        fs::remove_all(dir, ec);
        throw std::runtime_error("cannot run " + nginx);
    }
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    fs::remove_all(dir, ec);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        std::cerr << "check: nginx -t accepts the generated include (module " << module << ")\n";
        return 0;
    }
    std::cerr << text.str() << "check: nginx -t refuses the generated include\n";
    return 1;
}

} // namespace ondemand::ctl
