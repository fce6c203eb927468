// ondemand_metrics' rendering (ngx_module/ondemand_metrics.h): what a Prometheus scraper and
// a JSON reader get. The end-to-end test (t/64-metrics.t) parses the real endpoint's output
// with prometheus_client's parser; these check the details.
#include "ondemand_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace ondemand;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

struct string_sink final : text_sink {
    std::string text;
    void write(std::string_view s) override { text.append(s); }
};

struct one_app_fixture {
    app_snapshot app;
    worker_snapshot worker{1, 4242, true};
    metrics_snapshot m;
};

one_app_fixture one_app() {
    app_record record; // the snapshot copies its numbers
    record.state.store(app_state::ready);
    record.gen.store(3);
    record.counters.bump(record.counters.starts);
    record.counters.count(request_outcome::warm);
    record.counters.count(request_outcome::warm);
    record.counters.count(request_outcome::cold);
    record.counters.observe_hold(120);
    record.memory_bytes.store(41943040);
    one_app_fixture f;
    f.app = snapshot_of(record, "blog", "ondemand-exec@my\\x2dblog.service", 1795332776123);
    f.m.zone_size_bytes = 1048576;
    f.m.zone_free_bytes = 1000000;
    return f;
}

std::string prometheus(one_app_fixture& f) {
    f.m.apps = &f.app;
    f.m.napps = 1;
    f.m.workers = &f.worker;
    f.m.nworkers = 1;
    string_sink out;
    render_prometheus(f.m, out);
    return out.text;
}

nlohmann::json json(one_app_fixture& f) {
    f.m.apps = &f.app;
    f.m.napps = 1;
    f.m.workers = &f.worker;
    f.m.nworkers = 1;
    string_sink out;
    render_json(f.m, out);
    return nlohmann::json::parse(out.text);
}

} // namespace

TEST(Metrics, HoldTimesFallInTheFirstBucketTheyFit) {
    app_counters c;
    c.observe_hold(0);
    c.observe_hold(5);
    c.observe_hold(6);
    c.observe_hold(30001);
    EXPECT_EQ(c.hold[0].load(), 2u) << "le 5 ms includes 5";
    EXPECT_EQ(c.hold[1].load(), 1u);
    EXPECT_EQ(c.hold[hold_bucket_ms.size()].load(), 1u) << "+Inf";
    EXPECT_EQ(c.hold_sum_ms.load(), 30012u);
}

TEST(Metrics, PrometheusTextHasTypedFamiliesAndEscapedLabels) {
    one_app_fixture f = one_app();
    std::string text = prometheus(f);
    const std::string labels = R"({app="blog",unit="ondemand-exec@my\\x2dblog.service")";
    EXPECT_THAT(text, HasSubstr("# TYPE ondemand_app_starts_total counter\n"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_starts_total" + labels + "} 1\n"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_state" + labels + R"(,state="ready"} 1)"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_state" + labels + R"(,state="cold"} 0)"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_requests_total" + labels + R"(,outcome="warm"} 2)"));
    EXPECT_THAT(text, HasSubstr("# TYPE ondemand_app_hold_seconds histogram\n"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_hold_seconds_bucket" + labels + R"(,le="0.100"} 0)"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_hold_seconds_bucket" + labels + R"(,le="0.250"} 1)"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_hold_seconds_bucket" + labels + R"(,le="+Inf"} 1)"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_hold_seconds_sum" + labels + "} 0.120\n"));
    EXPECT_THAT(text, HasSubstr("ondemand_app_last_request_timestamp_seconds" + labels +
                                "} 1795332776.123\n"));
    EXPECT_THAT(text, HasSubstr(R"(ondemand_worker_helper_connected{pid="4242",slot="1"} 1)"));
    EXPECT_THAT(text, HasSubstr("\nondemand_zone_free_bytes 1000000\n"));
    EXPECT_THAT(text, HasSubstr("\nondemand_apps_configured 1\n"));
    EXPECT_EQ(text.back(), '\n');
}

TEST(Metrics, JsonCarriesTheSameNumbers) {
    one_app_fixture f = one_app();
    nlohmann::json j = json(f);
    const auto& app = j["apps"][0];
    EXPECT_EQ(app["name"], "blog");
    EXPECT_EQ(app["unit"], "ondemand-exec@my\\x2dblog.service");
    EXPECT_EQ(app["state"], "ready");
    EXPECT_EQ(app["generation"], 3);
    EXPECT_EQ(app["starts"], 1);
    EXPECT_EQ(app["requests"]["warm"], 2);
    EXPECT_EQ(app["requests"]["max-running"], 0);
    EXPECT_EQ(app["requests"]["max-memory"], 0);
    EXPECT_EQ(app["memory_bytes"], 41943040);
    EXPECT_DOUBLE_EQ(app["last_request"].get<double>(), 1795332776.123);
    EXPECT_EQ(app["hold_seconds"]["count"], 1);
    EXPECT_EQ(app["hold_seconds"]["buckets"].back()["le"], "+Inf");
    EXPECT_EQ(j["workers"][0]["helper_connected"], true);
    EXPECT_EQ(j["zone"]["size_bytes"], 1048576);
    EXPECT_EQ(j["apps_configured"], 1);
}

TEST(Metrics, AnAppThatNeverHadARequestHasNoLastRequestTime) {
    one_app_fixture f = one_app();
    f.app.last_request_unix_ms = 0;
    EXPECT_TRUE(json(f)["apps"][0]["last_request"].is_null());
}

TEST(Metrics, JsonIsChosenByQueryOrAccept) {
    EXPECT_TRUE(wants_json("format=json", ""));
    EXPECT_TRUE(wants_json("a=1&format=json", ""));
    EXPECT_FALSE(wants_json("format=jsonx", ""));
    EXPECT_FALSE(wants_json("xformat=json", ""));
    EXPECT_TRUE(wants_json("", "text/html, application/json;q=0.9"));
    EXPECT_FALSE(wants_json("format=prometheus", "application/json"));
    EXPECT_FALSE(wants_json("", "text/plain"));
}

TEST(Metrics, MemoryIsTheLastFigureWhileTheAppRuns) {
    app_record record;
    record.memory_bytes.store(41943040);
    EXPECT_EQ(snapshot_of(record, "a", "a.service", 0).memory_bytes, 0u) << "cold";
    record.state.store(app_state::frozen);
    EXPECT_EQ(snapshot_of(record, "a", "a.service", 0).memory_bytes, 41943040u);
    one_app_fixture f = one_app();
    EXPECT_THAT(prometheus(f),
                HasSubstr(std::string("\nondemand_app_memory_bytes") +
                          R"({app="blog",unit="ondemand-exec@my\\x2dblog.service"} 41943040)" +
                          "\n"));
}

TEST(Metrics, OutcomeNamesAreThoseOfOndemandStatus) {
    EXPECT_EQ(outcome_name(request_outcome::warm), "warm");
    EXPECT_EQ(outcome_name(request_outcome::queue_full), "queued-full");
    EXPECT_EQ(outcome_name(request_outcome::max_running), "max-running");
    EXPECT_EQ(outcome_name(request_outcome::abandoned), "abandoned");
    EXPECT_EQ(outcome_name(request_outcome::not_woken), "not-woken");
    EXPECT_EQ(outcome_name(request_outcome::wait_page), "wait-page");
    EXPECT_EQ(outcome_name(request_outcome::max_memory), "max-memory");
}
