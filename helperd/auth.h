// auth: who may speak for whom on helperd's socket (issue #12). The key shared by nginx and
// helperd (a key file read at start and on SIGHUP; HELLO's key= is compared with it in
// constant time), the reading of a peer's parent pid from /proc, and the binding of an nginx
// instance name to the process that holds it. No logging, no sockets: the server decides and
// logs. May include app_core (client ids) and policy (credentials) only.
#ifndef ONDEMAND_HELPERD_AUTH_H
#define ONDEMAND_HELPERD_AUTH_H

#include "app_core.h"

#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace ondemand::helperd {

// The key a client must send in its first line (HELLO instance key=KEY), or none.
class shared_key {
  public:
    shared_key() = default;
    // `key` must be valid (proto::valid_key), as read_key_file returns it.
    explicit shared_key(std::string key) : key_(std::move(key)) {}

    bool required() const { return !key_.empty(); }
    // Compares in constant time: the time does not depend on where the keys differ nor on the
    // offered key's length (always proto::max_key_length bytes are compared).
    bool matches(std::string_view offered) const;

  private:
    std::string key_;
};

// Equality of two byte strings of at most proto::max_key_length bytes, in constant time (a
// longer one is never equal). Exposed for the tests.
bool keys_equal(std::string_view a, std::string_view b);

// Reads the key file: the key (proto::key_from_file), or throws std::runtime_error with a
// message naming the file and what is wrong ("key file /x: cannot open: Permission denied").
std::string read_key_file(const std::string& path);

// Field 4 (ppid) of a /proc/PID/stat line. The second field, the command name in parentheses,
// may hold spaces and parentheses itself: the fields after it are read from the last ')'.
std::optional<pid_t> parent_pid_from_stat(std::string_view stat);

// The parent pid of a live process, from /proc/PID/stat; nullopt and `why` when it cannot be
// read (the process exited, /proc is not mounted...).
std::optional<pid_t> read_parent_pid(pid_t pid, std::string& why);

// Who holds an instance name: the peer's uid and its parent process (every worker of one nginx
// is a child of the same master, through reloads too).
struct instance_holder {
    uid_t uid = static_cast<uid_t>(-1);
    pid_t parent = 0;
    bool operator==(const instance_holder&) const = default;
};

// Instance names (HELLO) bound to their holder while any connection with that name is open.
class instance_registry {
  public:
    // Binds `name` to `who` for connection `id`. Refused (false) while connections of `name`
    // are open whose holder is not `who`; then `holder` tells who has it.
    bool claim(const std::string& name, client_id id, const instance_holder& who,
               instance_holder* holder = nullptr);
    // Connection `id` is gone: a name with no connection left is free again.
    void release(client_id id);
    std::size_t size() const { return names_.size(); }

  private:
    struct entry {
        instance_holder holder;
        std::set<client_id> clients;
    };
    std::map<std::string, entry, std::less<>> names_;
    std::map<client_id, std::string> by_client_;
};

} // namespace ondemand::helperd

#endif
