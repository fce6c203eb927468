// The codec's text helpers that need none of its parser: the line framing (line_reader) and
// APP's key=value fields (see ondemand_protocol.h).
#include "ondemand_protocol.h"

#include <cstring>

namespace ondemand::proto {

namespace {

// Printable ASCII other than the space (an attr value may be empty).
bool printable_token(std::string_view s) {
    for (char c : s) {
        if (c <= ' ' || c > '~') {
            return false;
        }
    }
    return true;
}

} // namespace

line_reader::status line_reader::next(std::string_view& line) {
    const char* start = buf_ + begin_;
    const void* nl = std::memchr(start, '\n', end_ - begin_);
    if (nl != nullptr) {
        std::size_t len = static_cast<const char*>(nl) - start;
        if (len > max_line_length) {
            return status::too_long;
        }
        line = std::string_view(start, len);
        begin_ += len + 1;
        return status::line;
    }
    if (pending() > max_line_length) {
        return status::too_long;
    }
    // Keep the partial line at the front, so that room() is what a line may still need.
    if (begin_ > 0) {
        std::memmove(buf_, buf_ + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    return status::need_more;
}

bool next_attr(std::string_view& rest, std::string_view& key, std::string_view& value) {
    constexpr std::size_t max_key_length = 32;
    if (rest.empty()) {
        return false;
    }
    std::size_t sp = rest.find(' ');
    std::string_view field = rest.substr(0, sp);
    std::size_t eq = field.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq > max_key_length) {
        return false;
    }
    key = field.substr(0, eq);
    value = field.substr(eq + 1);
    if (key[0] < 'a' || key[0] > 'z') {
        return false;
    }
    for (char c : key) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    if (!printable_token(value)) {
        return false;
    }
    if (sp == std::string_view::npos) {
        rest = {};
    } else {
        rest = rest.substr(sp + 1);
        if (rest.empty()) {
            return false; // a trailing space
        }
    }
    return true;
}

bool valid_attrs(std::string_view attrs) {
    std::string_view key;
    std::string_view value;
    while (!attrs.empty()) {
        if (!next_attr(attrs, key, value)) {
            return false;
        }
    }
    return true;
}

bool find_attr(std::string_view attrs, std::string_view key, std::string_view& value) {
    std::string_view k;
    std::string_view v;
    while (next_attr(attrs, k, v)) {
        if (k == key) {
            value = v;
            return true;
        }
    }
    return false;
}

} // namespace ondemand::proto
