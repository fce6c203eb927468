// ondemand_metrics: what the `ondemand_metrics` location answers — a snapshot of every app's
// record and of the workers, rendered in the Prometheus text exposition format (0.0.4) or as
// JSON. Free of nginx so that GoogleTest can check the rendering; the module's
// ngx_http_ondemand_metrics.cpp takes the snapshot from the zone and sends the text.
// Every metric and its type is documented in docs/directives.md, "ondemand_metrics".
//
// Must not call: nginx, the network.
#ifndef ONDEMAND_METRICS_H
#define ONDEMAND_METRICS_H

#include "ondemand_app_state.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ondemand {

struct app_snapshot {
    std::string_view name;
    std::string_view unit;
    app_state state = app_state::cold;
    std::uint64_t gen = 0;
    std::uint64_t in_flight = 0;
    std::uint64_t held = 0;
    std::uint64_t last_request_unix_ms = 0; // 0: no request yet
    std::uint64_t starts = 0;
    std::uint64_t failures = 0;
    std::uint64_t idle_stops = 0;
    std::uint64_t evictions = 0;
    std::uint64_t freezes = 0;
    std::uint64_t memory_bytes = 0; // last MEMORY figure while running (0: cold, or none)
    std::array<std::uint64_t, request_outcomes> requests{};
    std::array<std::uint64_t, hold_bucket_ms.size() + 1> hold{}; // per bucket, last +Inf
    std::uint64_t hold_sum_ms = 0;
};

// Reads a record's counters and gauges (no lock: each is one atomic load).
app_snapshot snapshot_of(const app_record& r, std::string_view name, std::string_view unit,
                         std::uint64_t last_request_unix_ms);

struct worker_snapshot {
    std::size_t slot = 0;
    std::int64_t pid = 0;
    bool helper_connected = false;
};

// The module is built without exceptions: nothing here allocates. The caller owns the arrays
// (nginx: the request's pool) and receives the text through a sink.
struct metrics_snapshot {
    const app_snapshot* apps = nullptr;
    std::size_t napps = 0;
    const worker_snapshot* workers = nullptr; // the worker slots that have a live owner
    std::size_t nworkers = 0;
    std::uint64_t zone_size_bytes = 0;
    std::uint64_t zone_free_bytes = 0;
};

// Where the rendered text goes, piece by piece.
class text_sink {
  public:
    virtual void write(std::string_view text) = 0;

  protected:
    ~text_sink() = default;
};

// The name of an outcome as $ondemand_status and the metrics' labels spell it.
std::string_view outcome_name(request_outcome o);

void render_prometheus(const metrics_snapshot& m, text_sink& out);
void render_json(const metrics_snapshot& m, text_sink& out);

// Which format a request asks for: JSON with `format=json` in its query string or an Accept
// header that names application/json; else the Prometheus text.
bool wants_json(std::string_view args, std::string_view accept);

} // namespace ondemand

#endif
