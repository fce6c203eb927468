// sd_notify() for the statically linked test app that goes into the container image.
// Debian ships no static libsystemd, and a container image has no libsystemd.so; the test app
// only needs sd_notify(), which is one datagram to $NOTIFY_SOCKET (see sd_notify(3)).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

extern "C" int sd_notify(int unset_environment, const char* state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    int result = 0;
    if (path != nullptr && state != nullptr && (path[0] == '/' || path[0] == '@')) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::size_t len = std::strlen(path);
        if (len < sizeof(addr.sun_path)) {
            std::memcpy(addr.sun_path, path, len);
            if (addr.sun_path[0] == '@')
                addr.sun_path[0] = '\0'; // abstract namespace
            int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (fd >= 0) {
                socklen_t alen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
                if (sendto(fd, state, std::strlen(state), MSG_NOSIGNAL,
                           reinterpret_cast<sockaddr*>(&addr), alen) >= 0)
                    result = 1;
                else
                    result = -errno;
                close(fd);
            }
        }
    }
    if (unset_environment)
        unsetenv("NOTIFY_SOCKET");
    return result;
}
