// policy: who may ask helperd for what. The unit allowlist (globs), the peer credentials of a
// connection (SO_PEERCRED, SO_PEERGROUPS) and the check of them. Pure checks plus one
// getsockopt reader: it must not include any other helperd header, log, or do I/O beyond that.
#ifndef ONDEMAND_HELPERD_POLICY_H
#define ONDEMAND_HELPERD_POLICY_H

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ondemand::helperd {

// Units helperd starts and stops. A unit is allowed when it matches one of the globs
// (fnmatch(3) without flags: *, ?, [...], and backslash escapes). Unit name syntax is checked
// separately by the protocol codec.
class unit_allowlist {
  public:
    static constexpr std::string_view default_glob = "ondemand-*.service";

    // An empty list means the default: {default_glob}.
    explicit unit_allowlist(std::vector<std::string> globs = {});

    // Units refused whatever the globs say (helperd's own unit: `ondemand-*.service` would
    // match ondemand-helperd.service).
    void exclude(std::string unit) { excluded_.push_back(std::move(unit)); }

    bool allows(std::string_view unit) const;
    const std::vector<std::string>& globs() const { return globs_; }

  private:
    std::vector<std::string> globs_;
    std::vector<std::string> excluded_;
};

// Credentials of a connected peer (SO_PEERCRED, SO_PEERGROUPS).
struct peer_credentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups, when the kernel reports them
};

// The credentials of the peer of a connected unix socket. When the kernel does not tell them,
// uid and gid are -1, so that they never pass a uid/gid check by accident.
peer_credentials read_peer_credentials(int fd);

// With no uid and no gid listed, every peer may connect (the socket's file mode is then the
// only gate). Otherwise a peer must have a listed uid, or a listed gid as its primary or one
// of its supplementary groups. uid 0 is not special: root is refused unless listed.
class peer_policy {
  public:
    peer_policy() = default;
    peer_policy(std::vector<uid_t> uids, std::vector<gid_t> gids)
        : uids_(std::move(uids)), gids_(std::move(gids)) {}

    bool allows(const peer_credentials& peer) const;
    bool open() const { return uids_.empty() && gids_.empty(); }

  private:
    std::vector<uid_t> uids_;
    std::vector<gid_t> gids_;
};

// How much any peer may take of helperd (docs/helperd.md, "Limits"). Beyond a connection cap a
// new connection is answered `ERROR connection limit: <cap>=N` and closed; beyond the app cap
// a request naming a new app is answered `ERROR app limit: max_apps=N`.
struct resource_limits {
    static constexpr std::size_t default_max_connections = 512;
    static constexpr std::size_t default_max_connections_per_uid = 256;
    static constexpr std::size_t default_max_apps = 4096;
    static constexpr std::chrono::milliseconds default_line_timeout{10000};
    static constexpr std::size_t default_max_waits_per_client = 4096;
    static constexpr std::chrono::milliseconds default_stop_timeout{120000};

    std::size_t max_connections = default_max_connections;
    std::size_t max_connections_per_uid = default_max_connections_per_uid;
    // App records (every name a START, WAIT, STOP, FREEZE or USE named). Idle records (no
    // unit running, nobody waiting) are dropped first when the cap is reached.
    std::size_t max_apps = default_max_apps;
    // A connection must complete a line this long after it connected or after the first
    // byte of a partial line (half-line/slowloris timeout); it is closed otherwise.
    std::chrono::milliseconds line_timeout = default_line_timeout;
    // Requests one connection may have waiting for an answer at once (START, WAIT, STOP,
    // FREEZE); beyond it a request is answered `FAILED app gen other wait limit: ...`. nginx
    // has at most one or two per app per worker.
    std::size_t max_waits_per_client = default_max_waits_per_client;
    // A stop whose job has not ended this long after StopUnit ends as failed (stop-failed),
    // and the app is ready or stopped as its unit's state says: never stopping for ever.
    std::chrono::milliseconds stop_timeout = default_stop_timeout;
};

} // namespace ondemand::helperd

#endif
