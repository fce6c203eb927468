// libFuzzer target for helperd's per-app state machine (helperd/app_core.h), free of I/O: the
// input is a script of events (START, WAIT, STOP, FREEZE from a few clients; the outcomes of the
// current or of a stale attempt; the unit going down; time passing; clients disconnecting; USE
// leases; shutdown). A model beside it records every waiter the core took on and not answered.
// Invariants, checked after every event:
//   - a waiter is answered at most once, and only if it was waiting (no unknown or doubled
//     answers); an outcome of a stale attempt answers nobody;
//   - no waiter is lost: every waiting START/WAIT is among start_waiters() or the pending WAITs,
//     every waiting STOP/FREEZE among stop_waiters(), and nothing else is there (counts match);
//   - start_waiters() and stop_waiters() hold no duplicates; stop waiters exist only while a
//     stop or freeze runs.
// At the end the script is settled (every running attempt fails or finishes, pending WAITs
// expire, bounded steps): then nobody may be left waiting. Any breach aborts.
#include "app_core.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace ondemand::helperd;
using namespace std::chrono_literals;

namespace {

enum class kind { start, stop };

struct model {
    std::map<std::pair<client_id, std::uint64_t>, kind> waiting;
};

[[noreturn]] void fail(const char* what, const waiter& w = {}) {
    std::fprintf(stderr, "fuzz_app_core: %s (client %llu gen %llu)\n", what,
                 static_cast<unsigned long long>(w.client), static_cast<unsigned long long>(w.gen));
    std::abort();
}

void answered(model& m, const std::vector<waiter>& ws) {
    for (const waiter& w : ws) {
        if (m.waiting.erase({w.client, w.gen}) != 1) {
            fail("answered a waiter that was not waiting (lost earlier, or answered twice)", w);
        }
    }
}

void check(const model& m, const app_core& core) {
    const auto& sw = core.start_waiters();
    const auto& tw = core.stop_waiters();
    std::size_t starts = 0;
    std::size_t stops = 0;
    for (const auto& [key, k] : m.waiting) {
        (k == kind::start ? starts : stops)++;
    }
    for (const auto* list : {&sw, &tw}) {
        for (std::size_t i = 0; i < list->size(); ++i) {
            const waiter& w = (*list)[i];
            auto it = m.waiting.find({w.client, w.gen});
            if (it == m.waiting.end()) {
                fail("the core holds a waiter that is not waiting", w);
            }
            if ((it->second == kind::start) != (list == &sw)) {
                fail("a waiter is in the wrong list", w);
            }
            if (std::count(list->begin(), list->end(), w) != 1) {
                fail("a waiter is held twice", w);
            }
        }
    }
    if (sw.size() + core.pending_waiters() != starts) {
        fail("START/WAIT waiters lost or invented");
    }
    if (tw.size() != stops) {
        fail("STOP/FREEZE waiters lost or invented");
    }
    if (!tw.empty() && core.phase() != app_phase::stopping && core.phase() != app_phase::freezing) {
        fail("stop waiters but no stop or freeze runs");
    }
}

struct input {
    const std::uint8_t* p;
    std::size_t n;
    bool empty() const { return n == 0; }
    std::uint8_t byte() {
        if (n == 0) {
            return 0;
        }
        --n;
        return *p++;
    }
    std::uint32_t u32() {
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
            v = (v << 8) | byte();
        }
        return v;
    }
};

const char* const units[] = {"ondemand-exec@a.service", "ondemand-exec@b.service"};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    input in{data, size};
    app_core core("a");
    model m;
    steady_time now = steady_time{} + 1000h;
    std::uint64_t gen_counter = 0;

    // A fresh waiter: a client of 1..4 and a generation the script picks, unless that pair is
    // already waiting (the daemon's clients never reuse a generation while they wait).
    auto next_waiter = [&](std::uint8_t b) -> std::optional<waiter> {
        waiter w{static_cast<client_id>(1 + (b & 3)), 0};
        std::uint8_t g = in.byte();
        w.gen = (g & 0x80) != 0 ? ++gen_counter + 1000 : g; // small gens repeat, big ones grow
        if (m.waiting.contains({w.client, w.gen})) {
            return std::nullopt;
        }
        return w;
    };

    while (!in.empty()) {
        std::uint8_t op = in.byte();
        std::uint8_t arg = in.byte();
        // The outcome of the current attempt, or (arg bit 7) of the one before: stale.
        std::uint64_t attempt = core.attempt() - ((arg & 0x80) != 0 ? 1 : 0);
        bool stale = attempt != core.attempt();
        switch (op % 16) {
        case 0:
        case 1: { // START
            auto w = next_waiter(arg);
            if (!w) {
                break;
            }
            start_params params{units[(arg >> 2) & 1], "connect", std::chrono::milliseconds(1000),
                                "/run/ondemand/apps/a/app.sock"};
            core.on_start(*w, params);
            m.waiting[{w->client, w->gen}] = kind::start;
            break;
        }
        case 2: { // WAIT
            auto w = next_waiter(arg);
            if (!w) {
                break;
            }
            switch (core.on_wait(*w, now)) {
            case app_core::wait_decision::joined:
            case app_core::wait_decision::pending:
                m.waiting[{w->client, w->gen}] = kind::start;
                break;
            case app_core::wait_decision::ready_now:
            case app_core::wait_decision::failed_now:
                break;
            }
            break;
        }
        case 3: { // STOP
            auto w = next_waiter(arg);
            if (!w) {
                break;
            }
            std::vector<waiter> canceled;
            core.on_stop(*w, units[(arg >> 2) & 1], canceled);
            answered(m, canceled);
            m.waiting[{w->client, w->gen}] = kind::stop;
            break;
        }
        case 4: { // FREEZE
            auto w = next_waiter(arg);
            if (!w) {
                break;
            }
            if (core.on_freeze(*w, units[(arg >> 2) & 1]) != app_core::freeze_decision::refused) {
                m.waiting[{w->client, w->gen}] = kind::stop;
            }
            break;
        }
        case 5:
        case 6: { // the start attempt worked
            auto ws = core.start_succeeded(attempt);
            if (stale && !ws.empty()) {
                fail("a stale start outcome answered waiters");
            }
            answered(m, ws);
            break;
        }
        case 7: { // the start attempt failed
            auto ws = core.start_failed(attempt, {});
            if (stale && !ws.empty()) {
                fail("a stale start failure answered waiters");
            }
            answered(m, ws);
            break;
        }
        case 8:
        case 9: { // the stop ended
            auto out = core.stop_finished(attempt);
            if (stale && !out.waiters.empty()) {
                fail("a stale stop outcome answered waiters");
            }
            answered(m, out.waiters);
            break;
        }
        case 10: { // the freeze ended
            auto out = core.freeze_finished(attempt, (arg & 1) != 0);
            if (stale && !out.waiters.empty()) {
                fail("a stale freeze outcome answered waiters");
            }
            answered(m, out.waiters);
            break;
        }
        case 11: // the unit went inactive by itself
            core.went_down();
            break;
        case 12: { // time passes (up to ~65 s a step, past pending_wait_limit in two)
            now += std::chrono::milliseconds((static_cast<std::uint32_t>(arg) << 8) | in.byte());
            answered(m, core.expire_pending(now));
            break;
        }
        case 13: { // a client disconnects: its waits are forgotten, never answered
            client_id c = 1 + (arg & 3);
            core.forget_client(c);
            std::erase_if(m.waiting, [c](const auto& e) { return e.first.first == c; });
            break;
        }
        case 14: { // USE leases (bounded: an unbounded lease overflows, issue #12)
            std::string owner = (arg & 1) != 0 ? "nginx-1" : "nginx-2";
            if ((arg & 2) != 0) {
                core.forget_owner(owner);
            } else {
                core.on_use(owner, now, std::chrono::milliseconds(in.u32()));
                (void)core.used_elsewhere(owner == "nginx-1" ? "nginx-2" : "nginx-1", now);
            }
            break;
        }
        case 15: // helperd shuts down
            answered(m, core.abandon_starts({}));
            break;
        }
        check(m, core);
    }

    // Settle: every running attempt ends, pending WAITs expire; then nobody may wait.
    for (int step = 0; step < 16 && !m.waiting.empty(); ++step) {
        switch (core.phase()) {
        case app_phase::starting:
            answered(m, core.start_failed(core.attempt(), {}));
            break;
        case app_phase::stopping:
            answered(m, core.stop_finished(core.attempt()).waiters);
            break;
        case app_phase::freezing:
            answered(m, core.freeze_finished(core.attempt(), true).waiters);
            break;
        default:
            now += app_core::pending_wait_limit + 1s;
            answered(m, core.expire_pending(now));
            break;
        }
        check(m, core);
    }
    if (!m.waiting.empty()) {
        fail("waiters left after settling: lost");
    }
    return 0;
}
