// The helperd protocol codec: the one definition of the wire format, built into both
// helperd and the nginx module. See docs/PROTOCOL.md.
//
// Written in the subset of C++17 that the nginx module can use: no exceptions, no RTTI,
// no allocation. Parsed fields are views into the caller's line buffer.
#ifndef ONDEMAND_PROTOCOL_H
#define ONDEMAND_PROTOCOL_H

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ondemand::proto {

// Longest line (without its '\n') either side may send.
inline constexpr std::size_t max_line_length = 4096;
inline constexpr std::size_t max_app_name_length = 64;
inline constexpr std::size_t max_unit_name_length = 255;
// sizeof(sockaddr_un::sun_path) minus the terminating NUL.
inline constexpr std::size_t max_socket_path_length = 107;
inline constexpr std::size_t max_http_path_length = 1024;
// Numeric field caps (docs/PROTOCOL.md): larger values are refused with an ERROR line, so that
// no side converts an absurd number into a duration or a time point that overflows.
// gen: at most 2^53 (exact in a double, far beyond any counter).
inline constexpr std::uint64_t max_gen = std::uint64_t{1} << 53;
// START's timeout_ms: at most one day.
inline constexpr std::uint64_t max_timeout_ms = 24ULL * 60 * 60 * 1000;
// USE's lease_ms: at most 30 days (more than nginx's own largest time, 2^31-1 ms).
inline constexpr std::uint64_t max_lease_ms = 30ULL * 24 * 60 * 60 * 1000;
// The key shared by nginx and helperd (HELLO's key=, docs/PROTOCOL.md): 16-256 printable
// non-space ASCII bytes (`openssl rand -hex 32` makes one of 64).
inline constexpr std::size_t min_key_length = 16;
inline constexpr std::size_t max_key_length = 256;
// MEMORY's bytes: at most 2^53 (8 PiB), like gen.
inline constexpr std::uint64_t max_memory_bytes = std::uint64_t{1} << 53;

enum class verb : std::uint8_t {
    // requests (nginx -> helperd)
    hello,     // HELLO instance [key=KEY]  (first line: which nginx instance; the shared key)
    start,     // START app gen unit ready timeout_ms socket
    wait,      // WAIT app gen
    stop,      // STOP app gen unit [force]
    freeze,    // FREEZE app gen unit
    use,       // USE app gen lease_ms
    status,    // STATUS
    subscribe, // SUBSCRIBE memory   (send me MEMORY pushes; docs/PROTOCOL.md)
    // replies and pushes (helperd -> nginx)
    ready,   // READY app gen
    failed,  // FAILED app gen code [details...]
    stopped, // STOPPED app gen
    frozen,  // FROZEN app gen
    down,    // DOWN app
    memory,  // MEMORY app bytes    (pushed to subscribers: the memory the app's unit uses)
    app,     // APP app state unit [key=value]...  (one per app, answers STATUS)
    end,     // END                 (closes a STATUS answer)
    error,   // ERROR text...       (the peer sent a line it could not accept)
};

// Why a start, stop or freeze failed: the first field of a FAILED line's reason, so that a
// client decides on a code, never on the human text after it. docs/PROTOCOL.md lists them.
enum class failure : std::uint8_t {
    other,            // a code this side does not know (a newer peer): treat as a failure
    timeout,          // the start's timeout_ms passed before the app was ready
    in_use,           // STOP/FREEZE refused: another instance holds a use lease on the app
    shutting_down,    // helperd is stopping; ask again once it is back
    not_allowed,      // the unit is outside helperd's allowlist
    unit_failed,      // the start job failed, or the unit went down before it was ready
    systemd_refused,  // systemd refused the D-Bus call (StartUnit: no such unit, ...)
    canceled,         // a STOP canceled this start (or a queued START, or a freeze)
    no_start_pending, // a WAIT saw no START for the app within the limit
    bus_lost,         // helperd lost its systemd connection
    stop_failed,      // the stop of the unit failed
    freeze_failed,    // FreezeUnit failed; the app still runs
    not_freezable,    // FREEZE refused: the app is starting or stopping
};

// The wire token of a failure code ("in-use", ...).
// (NUL-terminated: it views a string literal.)
std::string_view failure_name(failure f);

struct message {
    verb kind = verb::error;
    std::string_view app;
    // HELLO: the sender's instance (all connections of one nginx share it).
    std::string_view instance;
    // HELLO: the shared key (key=KEY), empty when the client sent none.
    std::string_view key;
    std::uint64_t gen = 0;
    std::string_view unit;
    std::string_view ready; // "connect", "notify" or "http:/path"
    std::uint64_t timeout_ms = 0;
    std::string_view socket;
    // USE: how long this client counts as using the app (its idle timeout).
    std::uint64_t lease_ms = 0;
    // STOP: stop even while another client uses the app (an operator's stop).
    bool force = false;
    std::string_view state; // APP
    // SUBSCRIBE: what the client asks to be sent ("memory", the only topic so far).
    std::string_view topic;
    // MEMORY: the memory the app's unit uses now, in bytes.
    std::uint64_t memory_bytes = 0;
    // APP: the key=value fields after the unit, as on the wire ("since=1 starts=2"; may be
    // empty). Read them with next_attr() or find_attr(); unknown keys are to be ignored.
    std::string_view attrs;
    // FAILED: why, as a code; `text` then holds the details after it (may be empty).
    failure reason = failure::other;
    std::string_view text; // FAILED details, ERROR text: the rest of the line
};

struct parse_result {
    bool ok = false;
    message msg;
    // On failure: a static, human-readable reason naming what is wrong.
    const char* error = nullptr;
};

// Parses one line; `line` excludes the terminating '\n' (a trailing '\r' is refused).
parse_result parse(std::string_view line);

// Writes `msg` as one line ending in '\n' into buf. Returns the length written, or 0 when
// the message is invalid or does not fit (nothing useful is written then).
std::size_t format(const message& msg, char* buf, std::size_t capacity);

// Splits a byte stream into lines inside a buffer the caller owns, without allocating: the
// one line framing of the module, helperd, ondemandctl and the tests. Read into space()/room(),
// then commit() the bytes read, then take lines with next() until it says need_more.
class line_reader {
  public:
    enum class status {
        line,      // `line` is the next complete line, without its '\n' (valid until the next call)
        need_more, // no complete line buffered: read more
        too_long,  // a line is longer than max_line_length: the stream cannot be resynchronised
    };

    // `buf` must hold at least max_line_length + 1 bytes.
    line_reader(char* buf, std::size_t capacity) : buf_(buf), capacity_(capacity) {}

    // Where to read to, and how much fits there (never 0 unless too_long was reported).
    char* space() { return buf_ + end_; }
    std::size_t room() const { return capacity_ - end_; }
    void commit(std::size_t n) { end_ += n; }

    status next(std::string_view& line);

    // Bytes of a partial line buffered now.
    std::size_t pending() const { return end_ - begin_; }
    void clear() { begin_ = end_ = 0; }

  private:
    char* buf_;
    std::size_t capacity_;
    std::size_t begin_ = 0; // start of the first unread byte
    std::size_t end_ = 0;   // end of the bytes read
};

// The name of a verb as it appears on the wire.
std::string_view verb_name(verb v);

// Requests that name an app (START, WAIT, STOP, FREEZE, USE).
constexpr bool names_app(verb v) {
    return v == verb::start || v == verb::wait || v == verb::stop || v == verb::freeze ||
           v == verb::use;
}
// Requests answered later, once their outcome is known (START, WAIT, STOP, FREEZE).
constexpr bool awaits_outcome(verb v) {
    return names_app(v) && v != verb::use;
}

// Field syntax, shared by both sides so that neither accepts what the other refuses.
// App names: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'.
bool valid_app_name(std::string_view name);
// Instance names (HELLO): the same syntax as app names.
bool valid_instance_name(std::string_view name);
// A systemd unit name: 1-255 of [A-Za-z0-9:_.\\@-], at most one '@', a known unit suffix.
bool valid_unit_name(std::string_view name);
// "connect", "notify" or "http:" followed by an absolute path of printable non-space bytes.
bool valid_ready_mode(std::string_view mode);
// An absolute path of printable non-space bytes that fits in sockaddr_un.
bool valid_socket_path(std::string_view path);
// A shared key: min_key_length to max_key_length bytes of 0x21-0x7e.
bool valid_key(std::string_view key);
// The key in a key file's contents: the whole file, less one trailing '\n'. Returns nullptr
// and sets `key` (a view into `contents`), or a static reason ("is empty", ...).
const char* key_from_file(std::string_view contents, std::string_view& key);
// Free text: printable bytes and spaces only (no control characters).
bool valid_text(std::string_view text);
// APP's key=value fields: each key 1-32 of [a-z0-9_] starting with a letter, then '=', then a
// value of printable non-space bytes (possibly empty); fields separated by exactly one space.
// An empty string (no fields) is valid.
bool valid_attrs(std::string_view attrs);
// Takes the next key=value field off the front of `rest` (as from message::attrs). Returns
// false when `rest` is empty or the field is malformed.
bool next_attr(std::string_view& rest, std::string_view& key, std::string_view& value);
// The value of `key` in `attrs` (the first one), or false when it is not there.
bool find_attr(std::string_view attrs, std::string_view key, std::string_view& value);

} // namespace ondemand::proto

#endif
