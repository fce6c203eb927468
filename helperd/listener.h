// helperd's listening socket: the one systemd passed (socket activation), or one it binds.
// Start-up only (main.cpp); it must not include any other helperd header.
#ifndef ONDEMAND_HELPERD_LISTENER_H
#define ONDEMAND_HELPERD_LISTENER_H

#include <sys/types.h>

#include <string>

namespace ondemand::helperd {

struct listen_socket {
    int fd = -1;
    bool activated = false; // passed by systemd (LISTEN_FDS); helperd does not own its path
};

// Takes the first socket passed by systemd when there is one (it must be a listening unix
// stream socket). Otherwise binds `path`: a stale socket file there is removed first (but a
// path that is not a socket, or a socket someone still accepts on, is an error), the file gets
// `mode`, and the socket listens. Throws std::runtime_error on failure.
listen_socket open_listen_socket(const std::string& path, mode_t mode);

} // namespace ondemand::helperd

#endif
