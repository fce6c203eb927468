#include "ondemand_protocol.h"

#include <array>
#include <charconv>
#include <cstring>

namespace ondemand::proto {

namespace {

struct verb_entry {
    std::string_view name;
    verb kind;
};

constexpr std::array<verb_entry, 17> verbs{{
    {"HELLO", verb::hello},
    {"START", verb::start},
    {"WAIT", verb::wait},
    {"STOP", verb::stop},
    {"FREEZE", verb::freeze},
    {"USE", verb::use},
    {"STATUS", verb::status},
    {"SUBSCRIBE", verb::subscribe},
    {"READY", verb::ready},
    {"FAILED", verb::failed},
    {"STOPPED", verb::stopped},
    {"FROZEN", verb::frozen},
    {"DOWN", verb::down},
    {"MEMORY", verb::memory},
    {"APP", verb::app},
    {"END", verb::end},
    {"ERROR", verb::error},
}};

struct failure_entry {
    std::string_view name;
    failure code;
};

constexpr std::array<failure_entry, 13> failures{{
    {"other", failure::other},
    {"timeout", failure::timeout},
    {"in-use", failure::in_use},
    {"shutting-down", failure::shutting_down},
    {"not-allowed", failure::not_allowed},
    {"unit-failed", failure::unit_failed},
    {"systemd-refused", failure::systemd_refused},
    {"canceled", failure::canceled},
    {"no-start-pending", failure::no_start_pending},
    {"bus-lost", failure::bus_lost},
    {"stop-failed", failure::stop_failed},
    {"freeze-failed", failure::freeze_failed},
    {"not-freezable", failure::not_freezable},
}};

// A failure code on the wire: 1-32 of [a-z-]. Unknown ones are a newer peer's: failure::other.
bool valid_failure_token(std::string_view s) {
    if (s.empty() || s.size() > 32) {
        return false;
    }
    for (char c : s) {
        if (!((c >= 'a' && c <= 'z') || c == '-')) {
            return false;
        }
    }
    return true;
}

failure failure_code(std::string_view token) {
    for (const auto& e : failures) {
        if (e.name == token) {
            return e.code;
        }
    }
    return failure::other;
}

bool is_printable(char c) {
    return c > ' ' && c < 0x7f;
}

bool all_printable(std::string_view s) {
    for (char c : s) {
        if (!is_printable(c)) {
            return false;
        }
    }
    return true;
}

// Splits off the next space-separated field; fields are separated by exactly one space.
class field_reader {
  public:
    explicit field_reader(std::string_view line) : rest_(line) {}

    bool next(std::string_view& field) {
        if (rest_.empty()) {
            return false;
        }
        std::size_t sp = rest_.find(' ');
        field = rest_.substr(0, sp);
        rest_ = sp == std::string_view::npos ? std::string_view{} : rest_.substr(sp + 1);
        // An empty field means a doubled, leading or trailing space.
        return !field.empty();
    }

    std::string_view rest() const { return rest_; }

  private:
    std::string_view rest_;
};

bool parse_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty() || s.size() > 20 || (s.size() > 1 && s[0] == '0')) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

// A generation: a u64 of at most max_gen. `out` is set even when too large, for the message.
bool parse_gen(std::string_view s, std::uint64_t& out) {
    out = 0;
    return parse_u64(s, out) && out <= max_gen;
}

parse_result fail(const char* why) {
    parse_result r;
    r.error = why;
    return r;
}

const char* check_app(std::string_view app) {
    return valid_app_name(app) ? nullptr : "invalid app name";
}

constexpr std::array<std::string_view, 11> unit_suffixes{
    ".service", ".socket", ".target", ".timer",     ".path", ".mount",
    ".slice",   ".scope",  ".device", ".automount", ".swap",
};

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

} // namespace

std::string_view failure_name(failure f) {
    for (const auto& e : failures) {
        if (e.code == f) {
            return e.name;
        }
    }
    return "other";
}

std::string_view verb_name(verb v) {
    for (const auto& e : verbs) {
        if (e.kind == v) {
            return e.name;
        }
    }
    return "?";
}

bool valid_app_name(std::string_view name) {
    if (name.empty() || name.size() > max_app_name_length || name[0] == '.' || name[0] == '-') {
        return false;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool valid_instance_name(std::string_view name) {
    return valid_app_name(name);
}

bool valid_key(std::string_view key) {
    return key.size() >= min_key_length && key.size() <= max_key_length && all_printable(key);
}

const char* key_from_file(std::string_view contents, std::string_view& key) {
    if (!contents.empty() && contents.back() == '\n') {
        contents.remove_suffix(1);
    }
    if (contents.empty()) {
        return "is empty";
    }
    if (contents.size() > max_key_length) {
        return "holds a key longer than 256 bytes";
    }
    if (!all_printable(contents)) {
        return "holds a space, a control character or a non-ASCII byte (one line of printable "
               "ASCII expected)";
    }
    if (contents.size() < min_key_length) {
        return "holds a key shorter than 16 bytes";
    }
    key = contents;
    return nullptr;
}

bool valid_unit_name(std::string_view name) {
    if (name.empty() || name.size() > max_unit_name_length) {
        return false;
    }
    std::size_t ats = 0;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == ':' || c == '_' || c == '.' || c == '\\' || c == '@' || c == '-';
        if (!ok) {
            return false;
        }
        ats += c == '@';
    }
    if (ats > 1 || name[0] == '@' || name[0] == '.') {
        return false;
    }
    for (std::string_view suffix : unit_suffixes) {
        if (ends_with(name, suffix) && name.size() > suffix.size()) {
            std::string_view stem = name.substr(0, name.size() - suffix.size());
            // "foo@.service" is a template, which cannot be started itself.
            return stem.back() != '@';
        }
    }
    return false;
}

bool valid_ready_mode(std::string_view mode) {
    if (mode == "connect" || mode == "notify") {
        return true;
    }
    constexpr std::string_view http = "http:";
    if (mode.substr(0, http.size()) != http) {
        return false;
    }
    std::string_view path = mode.substr(http.size());
    return !path.empty() && path[0] == '/' && path.size() <= max_http_path_length &&
           all_printable(path);
}

bool valid_socket_path(std::string_view path) {
    return !path.empty() && path[0] == '/' && path.size() <= max_socket_path_length &&
           all_printable(path);
}

bool valid_text(std::string_view text) {
    for (char c : text) {
        if (c != ' ' && !is_printable(c)) {
            return false;
        }
    }
    return true;
}

parse_result parse(std::string_view line) {
    if (line.size() > max_line_length) {
        return fail("line too long");
    }
    if (!valid_text(line)) {
        return fail("control character in line");
    }
    field_reader fields(line);
    std::string_view name;
    if (!fields.next(name)) {
        return fail("empty line or stray space");
    }
    parse_result r;
    bool known = false;
    for (const auto& e : verbs) {
        if (e.name == name) {
            r.msg.kind = e.kind;
            known = true;
        }
    }
    if (!known) {
        return fail("unknown verb");
    }
    message& m = r.msg;
    std::string_view gen;
    std::string_view timeout;
    const char* bad = nullptr;

    switch (m.kind) {
    case verb::hello:
        if (!fields.next(m.instance)) {
            return fail("HELLO needs: instance");
        }
        if (!valid_instance_name(m.instance)) {
            return fail("invalid instance name");
        }
        if (std::string_view opt; fields.next(opt) && opt.substr(0, 4) == "key=") {
            m.key = opt.substr(4);
            if (!valid_key(m.key)) {
                return fail("invalid key");
            }
        } else if (!opt.empty()) {
            return fail("unexpected extra field");
        }
        break;

    case verb::start:
        if (!fields.next(m.app) || !fields.next(gen) || !fields.next(m.unit) ||
            !fields.next(m.ready) || !fields.next(timeout) || !fields.next(m.socket)) {
            return fail("START needs: app gen unit ready timeout_ms socket");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!parse_gen(gen, m.gen)) {
            return fail(m.gen > max_gen ? "generation too large (at most 2^53)"
                                        : "invalid generation");
        }
        if (!valid_unit_name(m.unit)) {
            return fail("invalid unit name");
        }
        if (!valid_ready_mode(m.ready)) {
            return fail("invalid readiness mode");
        }
        if (!parse_u64(timeout, m.timeout_ms) || m.timeout_ms == 0) {
            return fail("invalid timeout");
        }
        if (m.timeout_ms > max_timeout_ms) {
            return fail("timeout too large (at most 86400000 ms)");
        }
        if (!valid_socket_path(m.socket)) {
            return fail("invalid socket path");
        }
        break;

    case verb::stop:
    case verb::freeze:
        if (!fields.next(m.app) || !fields.next(gen) || !fields.next(m.unit)) {
            return fail(m.kind == verb::stop ? "STOP needs: app gen unit"
                                             : "FREEZE needs: app gen unit");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!parse_gen(gen, m.gen)) {
            return fail(m.gen > max_gen ? "generation too large (at most 2^53)"
                                        : "invalid generation");
        }
        if (!valid_unit_name(m.unit)) {
            return fail("invalid unit name");
        }
        if (m.kind == verb::stop && fields.rest() == "force") {
            m.force = true;
            r.ok = true;
            return r;
        }
        break;

    case verb::use: {
        std::string_view lease;
        if (!fields.next(m.app) || !fields.next(gen) || !fields.next(lease)) {
            return fail("USE needs: app gen lease_ms");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!parse_gen(gen, m.gen)) {
            return fail(m.gen > max_gen ? "generation too large (at most 2^53)"
                                        : "invalid generation");
        }
        if (!parse_u64(lease, m.lease_ms) || m.lease_ms == 0) {
            return fail("invalid lease");
        }
        if (m.lease_ms > max_lease_ms) {
            return fail("lease too large (at most 2592000000 ms)");
        }
        break;
    }

    case verb::wait:
    case verb::ready:
    case verb::stopped:
    case verb::frozen:
        if (!fields.next(m.app) || !fields.next(gen)) {
            return fail("verb needs: app gen");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!parse_gen(gen, m.gen)) {
            return fail(m.gen > max_gen ? "generation too large (at most 2^53)"
                                        : "invalid generation");
        }
        break;

    case verb::failed:
        if (!fields.next(m.app) || !fields.next(gen)) {
            return fail("FAILED needs: app gen reason");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!parse_gen(gen, m.gen)) {
            return fail(m.gen > max_gen ? "generation too large (at most 2^53)"
                                        : "invalid generation");
        }
        {
            std::string_view code;
            if (!fields.next(code)) {
                return fail("FAILED needs a reason");
            }
            if (!valid_failure_token(code)) {
                return fail("invalid FAILED reason code");
            }
            m.reason = failure_code(code);
            // an unknown code stays in the details, so that nothing of it is lost
            m.text = m.reason == failure::other && code != "other"
                         ? std::string_view(code.data(), line.data() + line.size() - code.data())
                         : fields.rest();
        }
        r.ok = true;
        return r;

    case verb::down:
        if (!fields.next(m.app)) {
            return fail("DOWN needs: app");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        break;

    case verb::subscribe:
        if (!fields.next(m.topic)) {
            return fail("SUBSCRIBE needs: topic");
        }
        if (m.topic != "memory") {
            return fail("unknown subscription topic");
        }
        break;

    case verb::memory: {
        std::string_view bytes;
        if (!fields.next(m.app) || !fields.next(bytes)) {
            return fail("MEMORY needs: app bytes");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!parse_u64(bytes, m.memory_bytes) || m.memory_bytes > max_memory_bytes) {
            return fail("invalid memory size");
        }
        break;
    }

    case verb::app:
        if (!fields.next(m.app) || !fields.next(m.state) || !fields.next(m.unit)) {
            return fail("APP needs: app state unit");
        }
        if ((bad = check_app(m.app))) {
            return fail(bad);
        }
        if (!valid_unit_name(m.unit)) {
            return fail("invalid unit name");
        }
        // Then any number of key=value fields.
        m.attrs = fields.rest();
        if ((!line.empty() && line.back() == ' ') || !valid_attrs(m.attrs)) {
            return fail("invalid APP field");
        }
        r.ok = true;
        return r;

    case verb::error:
        m.text = fields.rest();
        r.ok = true;
        return r;

    case verb::status:
    case verb::end:
        break;
    }

    if (!fields.rest().empty() || (!line.empty() && line.back() == ' ')) {
        return fail("unexpected extra field");
    }
    r.ok = true;
    return r;
}

namespace {

// Appends to a fixed buffer; remembers overflow instead of failing each call.
class line_writer {
  public:
    line_writer(char* buf, std::size_t capacity) : buf_(buf), capacity_(capacity) {}

    line_writer& put(std::string_view s) {
        if (!overflow_ && s.size() <= capacity_ - len_) {
            std::memcpy(buf_ + len_, s.data(), s.size());
            len_ += s.size();
        } else {
            overflow_ = true;
        }
        return *this;
    }
    line_writer& field(std::string_view s) { return put(" ").put(s); }
    line_writer& field(std::uint64_t v) {
        char num[24];
        auto [p, ec] = std::to_chars(num, num + sizeof(num), v);
        (void)ec;
        return field(std::string_view(num, static_cast<std::size_t>(p - num)));
    }

    std::size_t finish() {
        put("\n");
        return overflow_ || len_ - 1 > max_line_length ? 0 : len_;
    }

  private:
    char* buf_;
    std::size_t capacity_;
    std::size_t len_ = 0;
    bool overflow_ = false;
};

bool valid_for_format(const message& m) {
    if (m.gen > max_gen) {
        return false;
    }
    switch (m.kind) {
    case verb::start:
        return valid_app_name(m.app) && valid_unit_name(m.unit) && valid_ready_mode(m.ready) &&
               m.timeout_ms > 0 && m.timeout_ms <= max_timeout_ms && valid_socket_path(m.socket);
    case verb::stop:
    case verb::freeze:
    case verb::app:
        return valid_app_name(m.app) && valid_unit_name(m.unit) &&
               (m.kind != verb::app ||
                (!m.state.empty() && all_printable(m.state) && valid_attrs(m.attrs)));
    case verb::hello:
        return valid_instance_name(m.instance) && (m.key.empty() || valid_key(m.key));
    case verb::use:
        return valid_app_name(m.app) && m.lease_ms > 0 && m.lease_ms <= max_lease_ms;
    case verb::subscribe:
        return m.topic == "memory";
    case verb::memory:
        return valid_app_name(m.app) && m.memory_bytes <= max_memory_bytes;
    case verb::wait:
    case verb::ready:
    case verb::stopped:
    case verb::frozen:
    case verb::down:
        return valid_app_name(m.app);
    case verb::failed:
        return valid_app_name(m.app) && valid_text(m.text);
    case verb::error:
        return valid_text(m.text);
    case verb::status:
    case verb::end:
        return true;
    }
    return false;
}

} // namespace

std::size_t format(const message& m, char* buf, std::size_t capacity) {
    if (!valid_for_format(m)) {
        return 0;
    }
    line_writer w(buf, capacity);
    w.put(verb_name(m.kind));
    switch (m.kind) {
    case verb::start:
        w.field(m.app)
            .field(m.gen)
            .field(m.unit)
            .field(m.ready)
            .field(m.timeout_ms)
            .field(m.socket);
        break;
    case verb::stop:
    case verb::freeze:
        w.field(m.app).field(m.gen).field(m.unit);
        if (m.kind == verb::stop && m.force) {
            w.field("force");
        }
        break;
    case verb::hello:
        w.field(m.instance);
        if (!m.key.empty()) {
            w.put(" key=").put(m.key);
        }
        break;
    case verb::use:
        w.field(m.app).field(m.gen).field(m.lease_ms);
        break;
    case verb::wait:
    case verb::ready:
    case verb::stopped:
    case verb::frozen:
        w.field(m.app).field(m.gen);
        break;
    case verb::failed:
        w.field(m.app).field(m.gen).field(failure_name(m.reason));
        if (!m.text.empty()) {
            w.field(m.text);
        }
        break;
    case verb::down:
        w.field(m.app);
        break;
    case verb::subscribe:
        w.field(m.topic);
        break;
    case verb::memory:
        w.field(m.app).field(m.memory_bytes);
        break;
    case verb::app:
        w.field(m.app).field(m.state).field(m.unit);
        if (!m.attrs.empty()) {
            w.field(m.attrs);
        }
        break;
    case verb::error:
        if (!m.text.empty()) {
            w.field(m.text);
        }
        break;
    case verb::status:
    case verb::end:
        break;
    }
    return w.finish();
}

} // namespace ondemand::proto
