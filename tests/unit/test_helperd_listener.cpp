// helperd's listening socket: the file gets its mode from bind itself (fchmod of the socket and
// the umask), never from a chmod by path after bind.
#include "listener.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

using namespace ondemand::helperd;

namespace {

struct temp_dir {
    std::string path;
    temp_dir() {
        std::string tmpl = "/tmp/ondemand-listener-XXXXXX";
        path = ::mkdtemp(tmpl.data());
    }
    ~temp_dir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
};

mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
}

} // namespace

TEST(Listener, SocketHasItsModeFromBind) {
    temp_dir dir;
    for (mode_t mode : {mode_t{0660}, mode_t{0600}, mode_t{0666}}) {
        std::string path = dir.path + "/s" + std::to_string(mode);
        mode_t old = ::umask(022);
        listen_socket s = open_listen_socket(path, mode);
        mode_t during = ::umask(old);
        ASSERT_GE(s.fd, 0);
        EXPECT_FALSE(s.activated);
        EXPECT_EQ(mode_of(path), mode);
        EXPECT_EQ(during, mode_t{022}) << "the caller's umask is restored";
        ::close(s.fd);
    }
}
