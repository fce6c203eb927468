#include "policy.h"

#include <fnmatch.h>

#include <algorithm>

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
