// libFuzzer target for the protocol codec (proto/, docs/PROTOCOL.md). The input is split on
// '\n' into lines (an input without '\n' is one line). Every line that parses must format (but
// not into a buffer one byte short); the formatted line must parse to an equal message and
// format to the same bytes again. APP's key=value fields are walked with next_attr() and looked
// up with find_attr(); a FAILED line's reason code must survive the round trip. The whole input
// also goes through proto::line_reader in chunks whose sizes the input's first byte picks: it
// must give the same lines as the plain split, and report too_long exactly when a line is
// longer than the limit. Any mismatch aborts, which libFuzzer reports as a crash with the input.
#include "ondemand_protocol.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace proto = ondemand::proto;

namespace {

// Aborts with `what`, the input line and (once there is one) its formatted line.
void require(bool ok, const char* what, std::string_view line, std::string_view formatted = {}) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_protocol: %s\n  line:      \"%.*s\"\n  formatted: \"%.*s\"\n",
                     what, static_cast<int>(line.size()), line.data(),
                     static_cast<int>(formatted.size()), formatted.data());
        std::abort();
    }
}

bool same(const proto::message& a, const proto::message& b) {
    return a.kind == b.kind && a.app == b.app && a.instance == b.instance && a.key == b.key &&
           a.gen == b.gen && a.unit == b.unit && a.ready == b.ready &&
           a.timeout_ms == b.timeout_ms && a.socket == b.socket && a.lease_ms == b.lease_ms &&
           a.force == b.force && a.state == b.state && a.attrs == b.attrs && a.reason == b.reason &&
           a.text == b.text && a.topic == b.topic && a.memory_bytes == b.memory_bytes;
}

// Every field next_attr() takes off must be found by find_attr(), at that field or at an
// earlier one with the same key (the first one wins); the walk must use up all of `attrs`.
void check_attrs(std::string_view attrs, std::string_view line) {
    std::string_view rest = attrs;
    std::string_view key;
    std::string_view value;
    while (proto::next_attr(rest, key, value)) {
        std::string_view found;
        require(proto::find_attr(attrs, key, found), "find_attr misses a key", line);
        require(found.data() < value.data() || found == value, "find_attr: wrong value", line);
    }
    require(rest.empty(), "next_attr stops before the end of valid attrs", line);
}

void check_line(std::string_view line) {
    static std::array<char, proto::max_line_length + 1> buf;
    static std::array<char, proto::max_line_length + 1> again;

    proto::parse_result r = proto::parse(line);
    require(r.ok == (r.error == nullptr), "parse: error set iff not ok", line);
    if (!r.ok) {
        return;
    }
    if (r.msg.kind == proto::verb::app) {
        check_attrs(r.msg.attrs, line);
    }

    std::size_t n = proto::format(r.msg, buf.data(), buf.size());
    require(n > 0 && buf[n - 1] == '\n',
            "format refuses a parsed message, or ends it without '\\n'", line);
    std::string_view out(buf.data(), n);
    std::string_view formatted = out.substr(0, n - 1); // without its '\n'
    again[n - 1] = '\0';
    require(proto::format(r.msg, again.data(), n - 1) == 0 && again[n - 1] == '\0',
            "format overflows a buffer one byte short", line, formatted);

    proto::parse_result r2 = proto::parse(formatted);
    require(r2.ok, "formatted line does not parse", line, formatted);
    require(same(r.msg, r2.msg), "formatted line parses to another message", line, formatted);
    std::size_t n2 = proto::format(r2.msg, again.data(), again.size());
    require(std::string_view(again.data(), n2) == out, "format is not stable", line, formatted);
}

// The reader's lines against the reference split (complete lines only: the part after the
// last '\n' is not a line yet). Stops at the first line over the limit, which must be reported.
void check_reader(std::string_view input) {
    static std::array<char, proto::max_line_length + 1> buf;
    proto::line_reader reader(buf.data(), buf.size());
    std::size_t chunk = input.empty() ? 1 : 1 + static_cast<unsigned char>(input[0]) % 97;
    std::string_view expect = input;
    std::size_t fed = 0;
    while (fed < input.size()) {
        std::size_t n = std::min({chunk, reader.room(), input.size() - fed});
        require(n > 0, "line_reader has no room without reporting too_long", input);
        std::copy_n(input.data() + fed, n, reader.space());
        reader.commit(n);
        fed += n;
        std::string_view line;
        proto::line_reader::status st;
        while ((st = reader.next(line)) == proto::line_reader::status::line) {
            std::size_t nl = expect.find('\n');
            require(nl != std::string_view::npos && expect.substr(0, nl) == line,
                    "line_reader gives another line than the split", input, line);
            expect.remove_prefix(nl + 1);
        }
        if (st == proto::line_reader::status::too_long) {
            std::size_t nl = expect.find('\n');
            require((nl == std::string_view::npos ? expect.size() : nl) > proto::max_line_length,
                    "line_reader: too_long for a line within the limit", input);
            return;
        }
        require(reader.pending() <= proto::max_line_length, "line_reader keeps an overlong line",
                input);
    }
    require(expect.find('\n') == std::string_view::npos, "line_reader misses a line", input);
    require(reader.pending() == expect.size(), "line_reader loses a partial line", input);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    check_reader(input);
    while (true) {
        std::size_t nl = input.find('\n');
        check_line(input.substr(0, nl));
        if (nl == std::string_view::npos) {
            return 0;
        }
        input.remove_prefix(nl + 1);
    }
}
