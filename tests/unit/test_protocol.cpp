// The wire codec shared by helperd and the nginx module: every verb round-trips, every
// malformed line is refused with a reason.
#include "ondemand_protocol.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace proto = ondemand::proto;
using proto::verb;

namespace {

std::string format_line(const proto::message& m) {
    std::array<char, proto::max_line_length + 2> buf{};
    std::size_t n = proto::format(m, buf.data(), buf.size());
    return std::string(buf.data(), n);
}

// Parses `line` (without its newline), formats the result, and expects the same line back.
void expect_round_trip(const std::string& line) {
    SCOPED_TRACE(line);
    proto::parse_result r = proto::parse(line);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(format_line(r.msg), line + "\n");
}

void expect_refused(std::string_view line, std::string_view why) {
    SCOPED_TRACE(std::string(line));
    proto::parse_result r = proto::parse(line);
    EXPECT_FALSE(r.ok);
    ASSERT_NE(r.error, nullptr);
    EXPECT_EQ(std::string_view(r.error), why);
}

} // namespace

TEST(Protocol, StartParsesEveryField) {
    auto r = proto::parse("START blog 42 ondemand-podman@blog.service http:/health 30000 "
                          "/run/ondemand/apps/blog/app.sock");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.kind, verb::start);
    EXPECT_EQ(r.msg.app, "blog");
    EXPECT_EQ(r.msg.gen, 42u);
    EXPECT_EQ(r.msg.unit, "ondemand-podman@blog.service");
    EXPECT_EQ(r.msg.ready, "http:/health");
    EXPECT_EQ(r.msg.timeout_ms, 30000u);
    EXPECT_EQ(r.msg.socket, "/run/ondemand/apps/blog/app.sock");
}

TEST(Protocol, EveryVerbRoundTrips) {
    for (const char* line : {
             "START blog 1 ondemand-blog.service connect 5000 /run/a.sock",
             "START a.b_c-d 9007199254740992 ondemand-x@a\\x2db.service notify 1 /s",
             "START blog 0 ondemand-blog.service http:/x?y=1 5000 /run/a.sock",
             "HELLO nginx-1f2e3d4c5b6a7988",
             "WAIT blog 7",
             "STOP blog 7 ondemand-blog.service",
             "STATUS",
             "READY blog 7",
             "FAILED blog 7 timeout",
             "FAILED blog 7 unit-failed start job failed: result exit-code, main process exited "
             "with status 3",
             "FAILED blog 7 in-use by another client for 1200 ms more",
             "FAILED blog 7 other",
             "STOPPED blog 7",
             "DOWN blog",
             "APP blog ready ondemand-blog.service",
             "END",
             "ERROR unknown verb",
             "ERROR",
         }) {
        expect_round_trip(line);
    }
}

TEST(Protocol, VerbNames) {
    EXPECT_EQ(proto::verb_name(verb::hello), "HELLO");
    EXPECT_EQ(proto::verb_name(verb::start), "START");
    EXPECT_EQ(proto::verb_name(verb::wait), "WAIT");
    EXPECT_EQ(proto::verb_name(verb::stop), "STOP");
    EXPECT_EQ(proto::verb_name(verb::status), "STATUS");
    EXPECT_EQ(proto::verb_name(verb::ready), "READY");
    EXPECT_EQ(proto::verb_name(verb::failed), "FAILED");
    EXPECT_EQ(proto::verb_name(verb::stopped), "STOPPED");
    EXPECT_EQ(proto::verb_name(verb::down), "DOWN");
    EXPECT_EQ(proto::verb_name(verb::app), "APP");
    EXPECT_EQ(proto::verb_name(verb::end), "END");
    EXPECT_EQ(proto::verb_name(verb::error), "ERROR");
}

TEST(Protocol, FailedKeepsTheWholeReason) {
    auto r = proto::parse("FAILED blog 3 unit-failed unit failed before ready:  two  spaces kept");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.reason, proto::failure::unit_failed);
    EXPECT_EQ(r.msg.text, "unit failed before ready:  two  spaces kept");
}

TEST(Protocol, FailedReasonIsACodeEachSideDecidesOn) {
    for (auto code :
         {proto::failure::timeout, proto::failure::in_use, proto::failure::shutting_down,
          proto::failure::not_allowed, proto::failure::unit_failed, proto::failure::systemd_refused,
          proto::failure::canceled, proto::failure::no_start_pending, proto::failure::bus_lost,
          proto::failure::stop_failed, proto::failure::freeze_failed,
          proto::failure::not_freezable}) {
        std::string line = "FAILED blog 2 " + std::string(proto::failure_name(code));
        auto r = proto::parse(line);
        ASSERT_TRUE(r.ok) << line << ": " << r.error;
        EXPECT_EQ(r.msg.reason, code) << line;
        EXPECT_EQ(r.msg.text, "") << line;
        expect_round_trip(line);
    }
}

TEST(Protocol, FailedWithAnUnknownCodeIsOtherAndKeepsTheCode) {
    auto r = proto::parse("FAILED blog 2 newer-code what a newer helperd says");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.reason, proto::failure::other);
    EXPECT_EQ(r.msg.text, "newer-code what a newer helperd says");
}

TEST(Protocol, FailedRefusesAReasonThatIsNoCode) {
    expect_refused("FAILED blog 1 timeout: 5 s", "invalid FAILED reason code");
    expect_refused("FAILED blog 1 Timeout", "invalid FAILED reason code");
    expect_refused("FAILED blog 1 start_job failed", "invalid FAILED reason code");
}

TEST(Protocol, RefusesUnknownAndEmpty) {
    expect_refused("", "empty line or stray space");
    expect_refused(" STATUS", "empty line or stray space");
    expect_refused("HELO x", "unknown verb");
    expect_refused("start blog 1 ondemand-blog.service connect 5000 /s", "unknown verb");
    expect_refused("STARTX", "unknown verb");
}

TEST(Protocol, RefusesMissingFields) {
    expect_refused("START blog 1 ondemand-blog.service connect 5000",
                   "START needs: app gen unit ready timeout_ms socket");
    expect_refused("START", "START needs: app gen unit ready timeout_ms socket");
    expect_refused("WAIT blog", "verb needs: app gen");
    expect_refused("READY", "verb needs: app gen");
    expect_refused("STOP blog 1", "STOP needs: app gen unit");
    expect_refused("FAILED blog 1", "FAILED needs a reason");
    expect_refused("FAILED blog", "FAILED needs: app gen reason");
    expect_refused("DOWN", "DOWN needs: app");
    expect_refused("APP blog ready", "APP needs: app state unit");
}

TEST(Protocol, HelloNamesTheInstance) {
    auto r = proto::parse("HELLO nginx-00ab");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.kind, verb::hello);
    EXPECT_EQ(r.msg.instance, "nginx-00ab");
    expect_refused("HELLO", "HELLO needs: instance");
    expect_refused("HELLO a b", "unexpected extra field");
    expect_refused("HELLO -x", "invalid instance name");
    expect_refused("HELLO a/b", "invalid instance name");
    expect_refused("HELLO " + std::string(proto::max_app_name_length + 1, 'a'),
                   "invalid instance name");

    std::array<char, 128> buf{};
    proto::message m;
    m.kind = verb::hello;
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()), 0u) << "HELLO needs an instance";
    m.instance = "bad instance";
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()), 0u);
}

// HELLO instance [key=KEY]: the key shared by nginx and helperd (issue #12).
TEST(Protocol, HelloCarriesTheKey) {
    const std::string key(64, 'f');
    const std::string line = "HELLO nginx-00ab key=" + key; // the parse views into it
    auto r = proto::parse(line);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.instance, "nginx-00ab");
    EXPECT_EQ(r.msg.key, key);
    EXPECT_TRUE(proto::parse("HELLO nginx-00ab").msg.key.empty());
    expect_round_trip("HELLO nginx-00ab key=" + key);
    expect_round_trip("HELLO x key=!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~");
    expect_round_trip("HELLO x key=" + std::string(proto::max_key_length, 'k'));
    expect_round_trip("HELLO x key=" + std::string(proto::min_key_length, 'k'));

    expect_refused("HELLO x key=", "invalid key");
    expect_refused("HELLO x key=" + std::string(proto::min_key_length - 1, 'k'), "invalid key");
    expect_refused("HELLO x key=" + std::string(proto::max_key_length + 1, 'k'), "invalid key");
    expect_refused("HELLO x key=" + key + " more", "unexpected extra field");
    expect_refused("HELLO x key=" + key + " key=" + key, "unexpected extra field");
    expect_refused("HELLO x key=" + key + " ", "unexpected extra field");
    expect_refused("HELLO x  key=" + key, "unexpected extra field");
    expect_refused("HELLO x KEY=" + key, "unexpected extra field");
    expect_refused("HELLO x secret=" + key, "unexpected extra field");
    expect_refused("HELLO x key=" + key + "\t", "control character in line");
    expect_refused("HELLO x key=" + key + "\xc3\xa9", "control character in line");
    expect_refused("HELLO key=" + key, "invalid instance name");

    std::array<char, 512> buf{};
    proto::message m;
    m.kind = verb::hello;
    m.instance = "x";
    m.key = "short";
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()), 0u) << "a key below the minimum";
    std::string spaced = key;
    spaced[3] = ' ';
    m.key = spaced;
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()), 0u) << "a key with a space";
}

TEST(Protocol, KeyFromFile) {
    std::string_view key;
    const std::string k(64, 'a');
    std::string file = k + "\n";
    EXPECT_EQ(proto::key_from_file(file, key), nullptr);
    EXPECT_EQ(key, k);
    EXPECT_EQ(proto::key_from_file(k, key), nullptr) << "no newline is fine";
    EXPECT_EQ(key, k);
    key = {};
    EXPECT_STREQ(proto::key_from_file("", key), "is empty");
    EXPECT_STREQ(proto::key_from_file("\n", key), "is empty");
    EXPECT_STREQ(proto::key_from_file(k + "\n\n", key),
                 "holds a space, a control character or a non-ASCII byte (one line of "
                 "printable ASCII expected)");
    EXPECT_NE(proto::key_from_file(k + "\r\n", key), nullptr);
    EXPECT_NE(proto::key_from_file("abcdefgh ijklmnopq\n", key), nullptr);
    EXPECT_NE(proto::key_from_file(std::string("abcdefghijklmnop\0", 17), key), nullptr);
    EXPECT_STREQ(proto::key_from_file("0123456789abcde\n", key),
                 "holds a key shorter than 16 bytes");
    EXPECT_STREQ(proto::key_from_file(std::string(257, 'a'), key),
                 "holds a key longer than 256 bytes");
    EXPECT_EQ(proto::key_from_file(std::string(256, 'a') + "\n", key), nullptr);
    EXPECT_TRUE(key.size() == 256);
}

TEST(Protocol, RefusesExtraFields) {
    expect_refused("STATUS now", "unexpected extra field");
    expect_refused("END x", "unexpected extra field");
    expect_refused("WAIT blog 1 2", "unexpected extra field");
    expect_refused("STOP blog 1 ondemand-blog.service x", "unexpected extra field");
    expect_refused("DOWN blog x", "unexpected extra field");
    expect_refused("START blog 1 ondemand-blog.service connect 5000 /s extra",
                   "unexpected extra field");
}

TEST(Protocol, RefusesStraySpaces) {
    expect_refused("WAIT  blog 1", "verb needs: app gen");
    expect_refused("WAIT blog  1", "verb needs: app gen");
    expect_refused("WAIT blog 1 ", "unexpected extra field");
    expect_refused("STATUS ", "unexpected extra field");
    expect_refused("STOP blog 1  ondemand-blog.service", "STOP needs: app gen unit");
}

TEST(Protocol, RefusesBadAppNames) {
    expect_refused("WAIT .blog 1", "invalid app name");
    expect_refused("WAIT -blog 1", "invalid app name");
    expect_refused("WAIT bl/og 1", "invalid app name");
    expect_refused("WAIT bl@og 1", "invalid app name");
    expect_refused("WAIT " + std::string(65, 'a') + " 1", "invalid app name");
    EXPECT_TRUE(proto::parse("WAIT " + std::string(64, 'a') + " 1").ok);
    expect_refused("DOWN b:x", "invalid app name");
}

TEST(Protocol, RefusesBadGenerations) {
    expect_refused("WAIT blog x", "invalid generation");
    expect_refused("WAIT blog -1", "invalid generation");
    expect_refused("WAIT blog 01", "invalid generation");
    expect_refused("WAIT blog 18446744073709551616", "invalid generation");
    expect_refused("WAIT blog 1e3", "invalid generation");
    expect_refused("STOP blog +1 ondemand-blog.service", "invalid generation");
}

TEST(Protocol, RefusesBadUnits) {
    const std::string pre = "START blog 1 ";
    const std::string post = " connect 5000 /s";
    expect_refused(pre + "ondemand-blog" + post, "invalid unit name");
    expect_refused(pre + "ondemand@.service" + post, "invalid unit name");
    expect_refused(pre + "a@b@c.service" + post, "invalid unit name");
    expect_refused(pre + "@x.service" + post, "invalid unit name");
    expect_refused(pre + ".service" + post, "invalid unit name");
    expect_refused(pre + "../x.service" + post, "invalid unit name");
    expect_refused(pre + "x$y.service" + post, "invalid unit name");
    expect_refused(pre + std::string(248, 'a') + ".service" + post, "invalid unit name");
    expect_refused("STOP blog 1 x.exe", "invalid unit name");
    EXPECT_TRUE(proto::parse(pre + "ondemand-x@a\\x2db.service" + post).ok);
    EXPECT_TRUE(proto::parse(pre + "x.socket" + post).ok);
}

TEST(Protocol, RefusesBadReadinessModes) {
    const std::string pre = "START blog 1 ondemand-blog.service ";
    const std::string post = " 5000 /s";
    expect_refused(pre + "tcp" + post, "invalid readiness mode");
    expect_refused(pre + "http:" + post, "invalid readiness mode");
    expect_refused(pre + "http:health" + post, "invalid readiness mode");
    expect_refused(pre + "http:/" + std::string(1024, 'a') + post, "invalid readiness mode");
    expect_refused(pre + "Connect" + post, "invalid readiness mode");
    EXPECT_TRUE(proto::parse(pre + "http:/" + post).ok);
}

TEST(Protocol, RefusesBadTimeoutsAndSockets) {
    const std::string pre = "START blog 1 ondemand-blog.service connect ";
    expect_refused(pre + "0 /s", "invalid timeout");
    expect_refused(pre + "5s /s", "invalid timeout");
    expect_refused(pre + "5000 relative.sock", "invalid socket path");
    expect_refused(pre + "5000 /" + std::string(107, 'a'), "invalid socket path");
    EXPECT_TRUE(proto::parse(pre + "5000 /" + std::string(106, 'a')).ok);
}

TEST(Protocol, RefusesOverlongLines) {
    std::string line = "ERROR " + std::string(proto::max_line_length - 6, 'x');
    EXPECT_TRUE(proto::parse(line).ok);
    expect_refused(line + "x", "line too long");
}

TEST(Protocol, RefusesControlCharacters) {
    expect_refused("STATUS\r", "control character in line");
    expect_refused("WAIT blog\t1", "control character in line");
    expect_refused(std::string("WAIT blog 1\0", 12), "control character in line");
    expect_refused("FAILED blog 1 bad\x1b[0m", "control character in line");
    expect_refused("WAIT bl\xc3\xa9og 1", "control character in line");
}

TEST(Protocol, FormatRefusesWhatParseWouldRefuse) {
    std::array<char, 256> buf{};
    proto::message m;
    m.kind = verb::start;
    m.app = "blog";
    m.unit = "ondemand-blog.service";
    m.ready = "connect";
    m.timeout_ms = 0;
    m.socket = "/s";
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()), 0u) << "timeout 0";
    m.timeout_ms = 1;
    EXPECT_GT(proto::format(m, buf.data(), buf.size()), 0u);
    m.app = "bad app";
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()), 0u);

    proto::message failed;
    failed.kind = verb::failed;
    failed.app = "blog";
    failed.text = "";
    failed.reason = proto::failure::timeout;
    std::size_t n = proto::format(failed, buf.data(), buf.size());
    EXPECT_EQ(std::string_view(buf.data(), n), "FAILED blog 0 timeout\n")
        << "the code alone is a reason";
    failed.text = "two\nlines";
    EXPECT_EQ(proto::format(failed, buf.data(), buf.size()), 0u);
}

TEST(Protocol, FormatRefusesWhatDoesNotFit) {
    proto::message m;
    m.kind = verb::ready;
    m.app = "blog";
    m.gen = 12345;
    std::array<char, 64> buf{};
    EXPECT_EQ(proto::format(m, buf.data(), 5), 0u);
    EXPECT_EQ(proto::format(m, buf.data(), buf.size()),
              std::string_view("READY blog 12345\n").size());

    proto::message err;
    err.kind = verb::error;
    std::string text(proto::max_line_length, 'x');
    err.text = text;
    std::string big(proto::max_line_length * 2, '\0');
    EXPECT_EQ(proto::format(err, big.data(), big.size()), 0u) << "longer than a line";
}

TEST(Protocol, FieldValidators) {
    EXPECT_TRUE(proto::valid_app_name("a"));
    EXPECT_FALSE(proto::valid_app_name(""));
    EXPECT_TRUE(proto::valid_unit_name("ondemand-exec@blog.service"));
    EXPECT_FALSE(proto::valid_unit_name("ondemand-exec@.service"));
    EXPECT_TRUE(proto::valid_ready_mode("notify"));
    EXPECT_FALSE(proto::valid_ready_mode("http:/a b"));
    EXPECT_TRUE(proto::valid_socket_path("/run/x.sock"));
    EXPECT_FALSE(proto::valid_socket_path(""));
    EXPECT_TRUE(proto::valid_text("any printable text, with spaces"));
    EXPECT_FALSE(proto::valid_text("tab\there"));
}

TEST(Protocol, AppCarriesKeyValueFields) {
    auto r = proto::parse("APP blog ready ondemand-blog.service since=1795332776123 "
                          "last=1795332777000 starts=3 failures=0 note=a=b empty=");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.msg.unit, "ondemand-blog.service");
    EXPECT_EQ(r.msg.attrs,
              "since=1795332776123 last=1795332777000 starts=3 failures=0 note=a=b empty=");
    std::string_view v;
    ASSERT_TRUE(proto::find_attr(r.msg.attrs, "starts", v));
    EXPECT_EQ(v, "3");
    ASSERT_TRUE(proto::find_attr(r.msg.attrs, "note", v));
    EXPECT_EQ(v, "a=b") << "the first '=' ends the key";
    ASSERT_TRUE(proto::find_attr(r.msg.attrs, "empty", v));
    EXPECT_EQ(v, "");
    EXPECT_FALSE(proto::find_attr(r.msg.attrs, "nosuch", v));

    std::string_view rest = r.msg.attrs;
    std::string_view key;
    std::vector<std::string> keys;
    while (proto::next_attr(rest, key, v)) {
        keys.emplace_back(key);
    }
    EXPECT_EQ(keys,
              (std::vector<std::string>{"since", "last", "starts", "failures", "note", "empty"}));
    EXPECT_TRUE(rest.empty());

    expect_round_trip("APP blog ready ondemand-blog.service since=1 starts=2");
    expect_round_trip("APP blog stopped ondemand-blog.service");
    auto bare = proto::parse("APP blog ready ondemand-blog.service");
    ASSERT_TRUE(bare.ok);
    EXPECT_TRUE(bare.msg.attrs.empty());
}

TEST(Protocol, AppRefusesMalformedFields) {
    const std::string pre = "APP blog ready ondemand-blog.service ";
    for (const char* bad : {"since", "=1", "Since=1", "1x=2", "a-b=1", "since=1 ", "since=1  x=2",
                            "x=1 y", "abcdefghijklmnopqrstuvwxyz0123456=1"}) {
        expect_refused(pre + bad, "invalid APP field");
    }
    expect_refused("APP blog ready ondemand-blog.service ", "invalid APP field");
    proto::parse_result ok = proto::parse(pre + "abcdefghijklmnopqrstuvwxyz012345=1");
    EXPECT_TRUE(ok.ok) << "a 32-byte key";
}

TEST(Protocol, AppFormatRefusesInvalidFields) {
    proto::message m;
    m.kind = verb::app;
    m.app = "blog";
    m.state = "ready";
    m.unit = "ondemand-blog.service";
    m.attrs = "starts=1";
    EXPECT_EQ(format_line(m), "APP blog ready ondemand-blog.service starts=1\n");
    m.attrs = "starts=1 ";
    EXPECT_EQ(format_line(m), "");
    m.attrs = "no_value";
    EXPECT_EQ(format_line(m), "");
}

// Numeric fields are capped (docs/PROTOCOL.md, "Fields"): nothing larger reaches a conversion
// to a duration or a time point.
TEST(Protocol, CapsGenerationsTimeoutsAndLeases) {
    const std::string gen_cap = std::to_string(proto::max_gen);
    const std::string gen_over = std::to_string(proto::max_gen + 1);
    EXPECT_TRUE(proto::parse("WAIT blog " + gen_cap).ok);
    expect_refused("WAIT blog " + gen_over, "generation too large (at most 2^53)");
    expect_refused("USE blog 18446744073709551615 1000", "generation too large (at most 2^53)");
    expect_refused("STOP blog " + gen_over + " ondemand-blog.service",
                   "generation too large (at most 2^53)");

    const std::string pre = "START blog 1 ondemand-blog.service connect ";
    EXPECT_TRUE(proto::parse(pre + "86400000 /s").ok);
    expect_refused(pre + "86400001 /s", "timeout too large (at most 86400000 ms)");
    expect_refused(pre + "10000000000000 /s", "timeout too large (at most 86400000 ms)");
    expect_refused(pre + "18446744073709551615 /s", "timeout too large (at most 86400000 ms)");

    EXPECT_TRUE(proto::parse("USE blog 2 2592000000").ok);
    expect_refused("USE blog 2 2592000001", "lease too large (at most 2592000000 ms)");
    expect_refused("USE blog 2 10000000000000", "lease too large (at most 2592000000 ms)");
}

TEST(Protocol, FormatRefusesNumbersBeyondTheCaps) {
    proto::message m;
    m.kind = verb::start;
    m.app = "blog";
    m.unit = "ondemand-blog.service";
    m.ready = "connect";
    m.socket = "/s";
    m.timeout_ms = proto::max_timeout_ms + 1;
    EXPECT_EQ(format_line(m), "");
    m.timeout_ms = proto::max_timeout_ms;
    m.gen = proto::max_gen + 1;
    EXPECT_EQ(format_line(m), "");
    m.kind = verb::use;
    m.gen = 1;
    m.lease_ms = proto::max_lease_ms + 1;
    EXPECT_EQ(format_line(m), "");
}
