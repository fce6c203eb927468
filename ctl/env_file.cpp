#include "env_file.h"

namespace ondemand::ctl {

std::vector<env_entry> read_env_file(std::string_view text) {
    enum class st {
        pre_key,
        key,
        pre_value,
        value,
        value_escape,
        single_quote,
        double_quote,
        double_quote_escape,
        comment
    };
    auto newline = [](char c) { return c == '\n' || c == '\r'; };
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    std::vector<env_entry> out;
    env_entry cur;
    std::size_t key_ws = std::string::npos;   // where the key's trailing whitespace starts
    std::size_t value_ws = std::string::npos; // where the value's trailing whitespace starts
    unsigned line = 1;
    st state = st::pre_key;
    auto push = [&](bool trim_value) {
        if (key_ws != std::string::npos) {
            cur.key.resize(key_ws);
        }
        if (trim_value && value_ws != std::string::npos) {
            cur.value.resize(value_ws);
        }
        out.push_back(std::move(cur));
        cur = env_entry{};
    };
    for (char c : text) {
        switch (state) {
        case st::pre_key:
            if (c == '#' || c == ';') {
                state = st::comment;
            } else if (!space(c)) {
                state = st::key;
                key_ws = std::string::npos;
                cur.line = line;
                cur.key += c;
            }
            break;
        case st::key:
            if (newline(c)) {
                state = st::pre_key;
                cur.has_equals = false; // systemd ignores the line; check reports it
                push(false);
            } else if (c == '=') {
                state = st::pre_value;
                value_ws = std::string::npos;
            } else {
                if (!space(c)) {
                    key_ws = std::string::npos;
                } else if (key_ws == std::string::npos) {
                    key_ws = cur.key.size();
                }
                cur.key += c;
            }
            break;
        case st::pre_value:
            if (newline(c)) {
                state = st::pre_key;
                push(false);
            } else if (c == '\'') {
                state = st::single_quote;
            } else if (c == '"') {
                state = st::double_quote;
            } else if (c == '\\') {
                state = st::value_escape;
            } else if (!space(c)) {
                state = st::value;
                cur.value += c;
            }
            break;
        case st::value:
            if (newline(c)) {
                state = st::pre_key;
                push(true);
            } else if (c == '\\') {
                state = st::value_escape;
                value_ws = std::string::npos;
            } else {
                if (!space(c)) {
                    value_ws = std::string::npos;
                } else if (value_ws == std::string::npos) {
                    value_ws = cur.value.size();
                }
                cur.value += c;
            }
            break;
        case st::value_escape:
            state = st::value;
            if (!newline(c)) { // an escaped newline is a line continuation
                cur.value += c;
            }
            break;
        case st::single_quote:
            if (c == '\'') {
                state = st::pre_value;
            } else {
                cur.value += c;
            }
            break;
        case st::double_quote:
            if (c == '"') {
                state = st::pre_value;
            } else if (c == '\\') {
                state = st::double_quote_escape;
            } else {
                cur.value += c;
            }
            break;
        case st::double_quote_escape:
            state = st::double_quote;
            if (c == '"' || c == '\\' || c == '`' || c == '$') {
                cur.value += c;
            } else if (c != '\n') {
                cur.value += '\\';
                cur.value += c;
            }
            break;
        case st::comment:
            if (newline(c)) {
                state = st::pre_key;
            }
            break;
        }
        if (c == '\n') {
            ++line;
        }
    }
    switch (state) {
    case st::pre_key:
    case st::comment:
        break;
    case st::key:
        cur.has_equals = false;
        push(false);
        break;
    case st::single_quote:
    case st::double_quote:
    case st::double_quote_escape:
        cur.unterminated = true;
        push(false);
        break;
    default:
        push(state == st::value);
        break;
    }
    return out;
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = 0;
        std::uint32_t cp = 0;
        std::uint32_t min = 0;
        if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + n >= s.size()) {
            return false;
        }
        for (std::size_t k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

} // namespace ondemand::ctl
