// ondemand_metrics: snapshots and their rendering (see ondemand_metrics.h). Nothing allocates:
// numbers are formatted on the stack, text goes to the sink.
#include "ondemand_metrics.h"

#include <cstdio>

namespace ondemand {

namespace {

constexpr std::array<std::string_view, request_outcomes> outcome_names = {
    "warm",   "cold",        "queued-full", "max-running", "timeout",
    "failed", "unavailable", "abandoned",   "not-woken",   "wait-page", "max-memory"};

constexpr std::array<app_state, 6> all_states = {app_state::cold,     app_state::starting,
                                                 app_state::ready,    app_state::stopping,
                                                 app_state::freezing, app_state::frozen};

class writer {
  public:
    explicit writer(text_sink& sink) : sink_(sink) {}

    writer& operator<<(std::string_view s) {
        sink_.write(s);
        return *this;
    }
    writer& operator<<(std::uint64_t v) {
        char buf[24];
        int n = std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(v));
        sink_.write(std::string_view(buf, static_cast<std::size_t>(n)));
        return *this;
    }
    // Milliseconds as seconds with three decimals ("1.250"), exact: no floating point.
    void seconds(std::uint64_t ms) {
        char buf[32];
        int n = std::snprintf(buf, sizeof(buf), "%llu.%03llu",
                              static_cast<unsigned long long>(ms / 1000),
                              static_cast<unsigned long long>(ms % 1000));
        sink_.write(std::string_view(buf, static_cast<std::size_t>(n)));
    }
    // A label value (Prometheus) or a JSON string body: `\`, `"` and control bytes escaped.
    // Unit names may hold `\` (systemd's \x2d escapes).
    void escaped(std::string_view s, bool json) {
        std::size_t run = 0;
        for (std::size_t i = 0; i < s.size(); ++i) {
            unsigned char c = static_cast<unsigned char>(s[i]);
            if (c != '\\' && c != '"' && c >= 0x20) {
                continue;
            }
            sink_.write(s.substr(run, i - run));
            run = i + 1;
            char buf[8];
            if (c == '\\' || c == '"') {
                buf[0] = '\\';
                buf[1] = static_cast<char>(c);
                buf[2] = '\0';
            } else if (c == '\n') {
                std::snprintf(buf, sizeof(buf), "\\n");
            } else {
                std::snprintf(buf, sizeof(buf), json ? "\\u%04x" : "\\x%02x", c);
            }
            sink_.write(buf);
        }
        sink_.write(s.substr(run));
    }

  private:
    text_sink& sink_;
};

// Prometheus: a family's header, then its samples `name{app="..",unit=".."[,k="v"]} value`.
class prometheus_writer {
  public:
    explicit prometheus_writer(text_sink& sink) : w_(sink) {}

    void family(std::string_view name, std::string_view type, std::string_view help) {
        w_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    }
    // The sample's name and labels, up to the value.
    void begin(std::string_view name, const app_snapshot& a, std::string_view key = {},
               std::string_view value = {}) {
        w_ << name << "{app=\"";
        w_.escaped(a.name, false);
        w_ << "\",unit=\"";
        w_.escaped(a.unit, false);
        w_ << "\"";
        if (!key.empty()) {
            w_ << "," << key << "=\"";
            w_.escaped(value, false);
            w_ << "\"";
        }
        w_ << "} ";
    }
    void sample(std::string_view name, const app_snapshot& a, std::uint64_t v,
                std::string_view key = {}, std::string_view value = {}) {
        begin(name, a, key, value);
        w_ << v << "\n";
    }
    void seconds(std::string_view name, const app_snapshot& a, std::uint64_t ms) {
        begin(name, a);
        w_.seconds(ms);
        w_ << "\n";
    }
    template <class F>
    void per_app(const metrics_snapshot& m, std::string_view name, std::string_view type,
                 std::string_view help, F each) {
        family(name, type, help);
        for (std::size_t i = 0; i < m.napps; ++i) {
            each(m.apps[i]);
        }
    }
    void global(std::string_view name, std::string_view help, std::uint64_t v) {
        family(name, "gauge", help);
        w_ << name << " " << v << "\n";
    }
    writer& raw() { return w_; }

  private:
    writer w_;
};

// "0.005" ... "30.000", "+Inf": the histogram's bucket bounds as text.
std::string_view bucket_bound(std::size_t i, char (&buf)[32]) {
    if (i >= hold_bucket_ms.size()) {
        return "+Inf";
    }
    int n = std::snprintf(buf, sizeof(buf), "%u.%03u", hold_bucket_ms[i] / 1000,
                          hold_bucket_ms[i] % 1000);
    return std::string_view(buf, static_cast<std::size_t>(n));
}

} // namespace

std::string_view outcome_name(request_outcome o) {
    return outcome_names[static_cast<std::size_t>(o)];
}

app_snapshot snapshot_of(const app_record& r, std::string_view name, std::string_view unit,
                         std::uint64_t last_request_unix_ms) {
    const app_counters& c = r.counters;
    app_snapshot s;
    s.name = name;
    s.unit = unit;
    s.state = r.state.load();
    s.gen = r.gen.load();
    s.in_flight = r.in_flight.load();
    s.held = r.held.load();
    s.last_request_unix_ms = last_request_unix_ms;
    s.starts = c.starts.load(std::memory_order_relaxed);
    s.failures = c.failures.load(std::memory_order_relaxed);
    s.idle_stops = c.idle_stops.load(std::memory_order_relaxed);
    s.evictions = c.evictions.load(std::memory_order_relaxed);
    s.freezes = c.freezes.load(std::memory_order_relaxed);
    s.memory_bytes = running(r) ? r.memory_bytes.load(std::memory_order_relaxed) : 0;
    for (std::size_t i = 0; i < s.requests.size(); ++i) {
        s.requests[i] = c.requests[i].load(std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < s.hold.size(); ++i) {
        s.hold[i] = c.hold[i].load(std::memory_order_relaxed);
    }
    s.hold_sum_ms = c.hold_sum_ms.load(std::memory_order_relaxed);
    return s;
}

void render_prometheus(const metrics_snapshot& m, text_sink& sink) {
    prometheus_writer w(sink);
    using app = const app_snapshot&;

    w.per_app(m, "ondemand_app_state", "gauge",
              "1 for the state the app is in (cold, starting, ready, stopping, freezing, frozen)",
              [&](app a) {
                  for (app_state s : all_states) {
                      w.sample("ondemand_app_state", a, a.state == s ? 1 : 0, "state",
                               app_state_name(s));
                  }
              });
    w.per_app(m, "ondemand_app_generation", "gauge", "the app's start generation",
              [&](app a) { w.sample("ondemand_app_generation", a, a.gen); });
    w.per_app(m, "ondemand_app_requests_in_flight", "gauge", "requests being proxied now",
              [&](app a) { w.sample("ondemand_app_requests_in_flight", a, a.in_flight); });
    w.per_app(m, "ondemand_app_requests_held", "gauge", "requests held for a start now",
              [&](app a) { w.sample("ondemand_app_requests_held", a, a.held); });
    w.per_app(m, "ondemand_app_last_request_timestamp_seconds", "gauge",
              "unix time of the end of the last request, or of the last start (0: none yet)",
              [&](app a) {
                  w.seconds("ondemand_app_last_request_timestamp_seconds", a,
                            a.last_request_unix_ms);
              });
    w.per_app(m, "ondemand_app_memory_bytes", "gauge",
              "memory the app's unit uses, as helperd last reported it (ondemand_max_memory; 0: "
              "not running or not known)",
              [&](app a) { w.sample("ondemand_app_memory_bytes", a, a.memory_bytes); });
    w.per_app(m, "ondemand_app_starts_total", "counter", "starts this nginx asked helperd for",
              [&](app a) { w.sample("ondemand_app_starts_total", a, a.starts); });
    w.per_app(m, "ondemand_app_start_failures_total", "counter", "starts that failed",
              [&](app a) { w.sample("ondemand_app_start_failures_total", a, a.failures); });
    w.per_app(m, "ondemand_app_requests_total", "counter",
              "requests by outcome, as $ondemand_status names it", [&](app a) {
                  for (std::size_t i = 0; i < request_outcomes; ++i) {
                      w.sample("ondemand_app_requests_total", a, a.requests[i], "outcome",
                               outcome_names[i]);
                  }
              });
    w.per_app(m, "ondemand_app_idle_stops_total", "counter",
              "stops for idleness (idle_timeout, frozen_timeout)",
              [&](app a) { w.sample("ondemand_app_idle_stops_total", a, a.idle_stops); });
    w.per_app(m, "ondemand_app_evictions_total", "counter",
              "stops to make room under ondemand_max_running or ondemand_max_memory",
              [&](app a) { w.sample("ondemand_app_evictions_total", a, a.evictions); });
    w.per_app(m, "ondemand_app_freezes_total", "counter", "freezes begun",
              [&](app a) { w.sample("ondemand_app_freezes_total", a, a.freezes); });
    w.per_app(m, "ondemand_app_hold_seconds", "histogram",
              "how long cold requests were held before they were proxied", [&](app a) {
                  std::uint64_t cumulative = 0;
                  for (std::size_t i = 0; i < a.hold.size(); ++i) {
                      cumulative += a.hold[i];
                      char buf[32];
                      w.sample("ondemand_app_hold_seconds_bucket", a, cumulative, "le",
                               bucket_bound(i, buf));
                  }
                  w.seconds("ondemand_app_hold_seconds_sum", a, a.hold_sum_ms);
                  w.sample("ondemand_app_hold_seconds_count", a, cumulative);
              });

    w.family("ondemand_worker_helper_connected", "gauge",
             "1 when the worker has its connection to helperd");
    for (std::size_t i = 0; i < m.nworkers; ++i) {
        const worker_snapshot& k = m.workers[i];
        w.raw() << "ondemand_worker_helper_connected{pid=\"" << static_cast<std::uint64_t>(k.pid)
                << "\",slot=\"" << static_cast<std::uint64_t>(k.slot) << "\"} "
                << (k.helper_connected ? "1\n" : "0\n");
    }
    w.global("ondemand_zone_size_bytes", "size of the ondemand_zone", m.zone_size_bytes);
    w.global("ondemand_zone_free_bytes", "free bytes in the ondemand_zone", m.zone_free_bytes);
    w.global("ondemand_apps_configured", "apps the running configuration names", m.napps);
}

namespace {

class json_writer {
  public:
    explicit json_writer(text_sink& sink) : w_(sink) {}

    void key(std::string_view k) {
        w_ << (first_ ? "\"" : ",\"") << k << "\":";
        first_ = false;
    }
    void number(std::string_view k, std::uint64_t v) {
        key(k);
        w_ << v;
    }
    void string(std::string_view k, std::string_view v) {
        key(k);
        w_ << "\"";
        w_.escaped(v, true);
        w_ << "\"";
    }
    void seconds(std::string_view k, std::uint64_t ms) {
        key(k);
        w_.seconds(ms);
    }
    // Opens an object or array as the value of `k` ("" inside an array).
    void open(std::string_view k, char bracket) {
        if (k.empty()) {
            w_ << (first_ ? "" : ",");
        } else {
            key(k);
        }
        char b[2] = {bracket, '\0'};
        w_ << b;
        first_ = true;
    }
    void close(char bracket) {
        char b[2] = {bracket, '\0'};
        w_ << b;
        first_ = false;
    }
    writer& raw() { return w_; }

  private:
    writer w_;
    bool first_ = true;
};

} // namespace

void render_json(const metrics_snapshot& m, text_sink& sink) {
    json_writer j(sink);
    j.open("", '{');
    j.open("apps", '[');
    for (std::size_t n = 0; n < m.napps; ++n) {
        const app_snapshot& a = m.apps[n];
        j.open("", '{');
        j.string("name", a.name);
        j.string("unit", a.unit);
        j.string("state", app_state_name(a.state));
        j.number("generation", a.gen);
        j.number("in_flight", a.in_flight);
        j.number("held", a.held);
        if (a.last_request_unix_ms == 0) {
            j.key("last_request");
            j.raw() << "null";
        } else {
            j.seconds("last_request", a.last_request_unix_ms);
        }
        j.number("starts", a.starts);
        j.number("start_failures", a.failures);
        j.number("idle_stops", a.idle_stops);
        j.number("evictions", a.evictions);
        j.number("freezes", a.freezes);
        j.number("memory_bytes", a.memory_bytes);
        j.open("requests", '{');
        for (std::size_t i = 0; i < request_outcomes; ++i) {
            j.number(outcome_names[i], a.requests[i]);
        }
        j.close('}');
        j.open("hold_seconds", '{');
        j.open("buckets", '[');
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < a.hold.size(); ++i) {
            cumulative += a.hold[i];
            j.open("", '{');
            char buf[32];
            std::string_view bound = bucket_bound(i, buf);
            j.key("le");
            if (i < hold_bucket_ms.size()) {
                j.raw() << bound;
            } else {
                j.raw() << "\"" << bound << "\"";
            }
            j.number("count", cumulative);
            j.close('}');
        }
        j.close(']');
        j.seconds("sum", a.hold_sum_ms);
        j.number("count", cumulative);
        j.close('}');
        j.close('}');
    }
    j.close(']');
    j.open("workers", '[');
    for (std::size_t i = 0; i < m.nworkers; ++i) {
        const worker_snapshot& k = m.workers[i];
        j.open("", '{');
        j.number("slot", k.slot);
        j.number("pid", static_cast<std::uint64_t>(k.pid));
        j.key("helper_connected");
        j.raw() << (k.helper_connected ? "true" : "false");
        j.close('}');
    }
    j.close(']');
    j.open("zone", '{');
    j.number("size_bytes", m.zone_size_bytes);
    j.number("free_bytes", m.zone_free_bytes);
    j.close('}');
    j.number("apps_configured", m.napps);
    j.close('}');
    j.raw() << "\n";
}

bool wants_json(std::string_view args, std::string_view accept) {
    // args: "a=1&format=json&b"; a parameter is a whole `format=...` between '&'s.
    std::size_t pos = 0;
    while (pos <= args.size()) {
        std::size_t end = args.find('&', pos);
        if (end == std::string_view::npos) {
            end = args.size();
        }
        std::string_view param = args.substr(pos, end - pos);
        if (param == "format=json") {
            return true;
        }
        if (param == "format=prometheus") {
            return false;
        }
        pos = end + 1;
    }
    return accept.find("application/json") != std::string_view::npos;
}

} // namespace ondemand
