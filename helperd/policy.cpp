// policy: the unit allowlist, the peer credential reader and the peer check (see policy.h).
// Must not include any other helperd header.
#include "policy.h"

#include <fnmatch.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace ondemand::helperd {

unit_allowlist::unit_allowlist(std::vector<std::string> globs) : globs_(std::move(globs)) {
    if (globs_.empty()) {
        globs_.emplace_back(default_glob);
    }
}

bool unit_allowlist::allows(std::string_view unit) const {
    const std::string name(unit);
    if (std::find(excluded_.begin(), excluded_.end(), name) != excluded_.end()) {
        return false;
    }
    return std::any_of(globs_.begin(), globs_.end(), [&](const std::string& glob) {
        return fnmatch(glob.c_str(), name.c_str(), 0) == 0;
    });
}

peer_credentials read_peer_credentials(int fd) {
    peer_credentials peer;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        peer.pid = cred.pid;
        peer.uid = cred.uid;
        peer.gid = cred.gid;
    } else {
        // Unknown credentials must never pass a uid/gid check by accident.
        peer.uid = static_cast<uid_t>(-1);
        peer.gid = static_cast<gid_t>(-1);
    }
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 4; ++tries) {
        socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
            groups.resize(size / sizeof(gid_t));
            peer.groups = std::move(groups);
            break;
        }
        if (errno != ERANGE) {
            break;
        }
        groups.resize(size / sizeof(gid_t) + 1);
    }
    return peer;
}

bool peer_policy::allows(const peer_credentials& peer) const {
    if (open()) {
        return true;
    }
    auto listed_gid = [&](gid_t g) {
        return std::find(gids_.begin(), gids_.end(), g) != gids_.end();
    };
    return std::find(uids_.begin(), uids_.end(), peer.uid) != uids_.end() || listed_gid(peer.gid) ||
           std::any_of(peer.groups.begin(), peer.groups.end(), listed_gid);
}

} // namespace ondemand::helperd
