// libFuzzer target for helperd's config file reader (helperd/config.h: parse_config, the TOML
// of --config). The input is the file's text. It must never crash, and what it accepts must be
// what the daemon can use: an absolute socket path of at most 107 bytes (or none), a mode of at
// most 0777, non-empty unit globs, peer_to_peer only with a D-Bus address; a rejected file
// gives at least one message and no half-set values are used. Parsing is deterministic: the
// same text gives the same result twice.
// toml++ itself is Debian's shared library (release build; TOML_HEADER_ONLY=0 as its CMake
// package sets): libFuzzer sees only our reader's coverage, and toml++'s known debug-only
// "unreachable" on some inputs (issue #12) stays out, as in the daemon.
#include "config.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

using namespace ondemand::helperd;

namespace {

void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_config: %s\n", what);
        std::abort();
    }
}

bool same(const config_values& a, const config_values& b) {
    auto same_bus = [](const std::optional<bus_address>& x, const std::optional<bus_address>& y) {
        if (x.has_value() != y.has_value()) {
            return false;
        }
        return !x || (x->type == y->type && x->address == y->address &&
                      x->peer_to_peer == y->peer_to_peer);
    };
    return a.socket == b.socket && same_bus(a.bus, b.bus) && a.allow_units == b.allow_units &&
           a.allow_uids == b.allow_uids && a.allow_gids == b.allow_gids &&
           a.socket_mode == b.socket_mode && a.level == b.level;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    config_result r = parse_config(text, "fuzz.toml");
    for (const std::string& e : r.errors) {
        require(!e.empty(), "an empty error message");
    }
    if (r.ok()) {
        const config_values& v = r.values;
        if (v.socket && !v.socket->empty()) {
            require((*v.socket)[0] == '/' && v.socket->size() <= 107, "bad socket path accepted");
        }
        if (v.socket_mode) {
            require(*v.socket_mode <= 0777, "bad socket mode accepted");
        }
        if (v.allow_units) {
            for (const std::string& g : *v.allow_units) {
                require(!g.empty(), "empty unit glob accepted");
            }
        }
        if (v.bus && v.bus->peer_to_peer) {
            require(v.bus->type == bus_address::kind::address, "peer_to_peer without an address");
        }
        if (v.bus && v.bus->type == bus_address::kind::address) {
            require(v.bus->address.find(':') != std::string::npos, "bus address without ':'");
        }
    }
    config_result again = parse_config(text, "fuzz.toml");
    require(again.errors == r.errors && same(again.values, r.values), "not deterministic");
    return 0;
}
