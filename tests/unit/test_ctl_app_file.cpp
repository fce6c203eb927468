// ondemandctl's app-file parser: what `check` reports and what `gen-nginx` is built from.
#include "app_file.h"
#include "app_file_testing.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

using namespace ondemand::ctl;
using ondemand::ctl::test_support::errors_of;

TEST(CtlAppFile, PodmanAppWithEveryKey) {
    parse_result r = parse_app_file("/etc/ondemand/apps/blog.conf",
                                    "# the blog\n"
                                    "KIND=podman\n"
                                    "IMAGE=localhost/blog:1.2\n"
                                    "CMD=/bin/blog --socket /run/ondemand/app.sock\n"
                                    "ARGS=\"--memory=256m --cpus=1\"\n"
                                    "PULL=missing\n"
                                    "HOSTS=blog.example.com  *.blog.example.com\n"
                                    "READY=http:/healthz\n"
                                    "START_TIMEOUT=45s\n"
                                    "IDLE_TIMEOUT=10m\n"
                                    "QUEUE=200\n"
                                    "FAILED_STATUS=503\n");
    ASSERT_TRUE(r.app) << errors_of(r);
    const app_config& a = *r.app;
    EXPECT_EQ(a.name, "blog");
    EXPECT_EQ(a.kind, app_kind::podman);
    EXPECT_EQ(a.unit(), "ondemand-podman@blog.service");
    EXPECT_EQ(a.image, "localhost/blog:1.2");
    EXPECT_EQ(a.cmd, "/bin/blog --socket /run/ondemand/app.sock");
    EXPECT_EQ(a.args, "--memory=256m --cpus=1");
    EXPECT_EQ(a.pull, "missing");
    EXPECT_EQ(a.hosts, (std::vector<std::string>{"blog.example.com", "*.blog.example.com"}));
    EXPECT_EQ(a.ready, "http:/healthz");
    EXPECT_EQ(a.start_timeout, "45s");
    EXPECT_EQ(a.idle_timeout, "10m");
    EXPECT_EQ(a.queue, "200");
    EXPECT_EQ(a.failed_status, "503");
}

TEST(CtlAppFile, KindDefaultsFromImageOrExec) {
    parse_result p = parse_app_file("a.conf", "IMAGE=img\n");
    ASSERT_TRUE(p.app) << errors_of(p);
    EXPECT_EQ(p.app->kind, app_kind::podman);
    EXPECT_EQ(p.app->ready, "connect");

    parse_result e = parse_app_file("b.conf", "EXEC=/usr/bin/b --socket $ONDEMAND_SOCKET\n");
    ASSERT_TRUE(e.app) << errors_of(e);
    EXPECT_EQ(e.app->kind, app_kind::exec);
    EXPECT_EQ(e.app->unit(), "ondemand-exec@b.service");
}

TEST(CtlAppFile, EveryKindHasItsTemplate) {
    for (auto [kind, unit] : {std::pair{"podman", "ondemand-podman@x.service"},
                              std::pair{"podman-simple", "ondemand-podman-simple@x.service"},
                              std::pair{"podman-systemd", "ondemand-podman-systemd@x.service"},
                              std::pair{"docker", "ondemand-docker@x.service"},
                              std::pair{"oci", "ondemand-oci@x.service"}}) {
        parse_result r = parse_app_file("x.conf", std::string("KIND=") + kind + "\nIMAGE=i\n");
        ASSERT_TRUE(r.app) << kind << ": " << errors_of(r);
        EXPECT_EQ(r.app->unit(), unit);
    }
}

TEST(CtlAppFile, ExecAppsMayCarryTheirEnvironment) {
    parse_result r = parse_app_file("shop.conf", "KIND=exec\nEXEC=/usr/bin/shop\n"
                                                 "DATABASE_URL=postgres:///shop\n");
    EXPECT_TRUE(r.app) << errors_of(r);
}

TEST(CtlAppFile, CommentsBlankLinesQuotesAndSpaces) {
    parse_result r = parse_app_file("q.conf", "\n  # indented comment\n; also a comment\n"
                                              "IMAGE = 'img:1'  \r\nCMD=\"\"\n");
    ASSERT_TRUE(r.app) << errors_of(r);
    EXPECT_EQ(r.app->image, "img:1");
    EXPECT_EQ(r.app->cmd, "");
}

TEST(CtlAppFile, ErrorsNameFileLineAndKey) {
    parse_result r = parse_app_file("/etc/ondemand/apps/bad.conf",
                                    "KIND=dockr\n"                 // 1
                                    "IMAGE=a b\n"                  // 2
                                    "READY=sometimes\n"            // 3
                                    "START_TIMEOUT=3x\n"           // 4
                                    "FOO=1\n"                      // 5
                                    "just words\n"                 // 6
                                    "IMAGE=again\n"                // 7
                                    "QUEUE=0\n"                    // 8
                                    "FAILED_STATUS=500\n"          // 9
                                    "HOSTS=ok.example bad_host!\n" // 10
                                    "EXEC=/bin/x\n"                // 11
                                    "CMD=\"unterminated\n");       // 12
    EXPECT_FALSE(r.app);
    std::string all = errors_of(r);
    EXPECT_NE(all.find("/etc/ondemand/apps/bad.conf:1: KIND: \"dockr\" is not one of"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("bad.conf:2: IMAGE: an image name has no spaces"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:3: READY:"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:4: START_TIMEOUT: \"3x\" is not a time"), std::string::npos)
        << all;
    EXPECT_NE(all.find("bad.conf:5: FOO: unknown key"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:6: expected KEY=VALUE"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:7: IMAGE: set twice (first on line 2)"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:8: QUEUE:"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:9: FAILED_STATUS: must be 502 or 503"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:10: HOSTS: \"bad_host!\" is not a valid host name"),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("bad.conf:12: CMD: unterminated quote"), std::string::npos) << all;
    EXPECT_NE(all.find("bad.conf:11: EXEC: only for KIND=exec"), std::string::npos) << all;
    // sorted by line
    for (std::size_t i = 1; i < r.errors.size(); ++i) {
        EXPECT_LE(r.errors[i - 1].line, r.errors[i].line);
    }
}

TEST(CtlAppFile, RequiredKeys) {
    EXPECT_NE(errors_of(parse_app_file("a.conf", "KIND=docker\n")).find("a.conf: IMAGE: required"),
              std::string::npos);
    EXPECT_NE(errors_of(parse_app_file("a.conf", "KIND=exec\n")).find("a.conf: EXEC: required"),
              std::string::npos);
    EXPECT_NE(errors_of(parse_app_file("a.conf", "KIND=exec\nEXEC=/x\nIMAGE=i\n"))
                  .find("a.conf:3: IMAGE: only for container kinds"),
              std::string::npos);
}

TEST(CtlAppFile, OciTakesNoPodmanOptions) {
    parse_result ok = parse_app_file("a.conf", "KIND=oci\nIMAGE=i\nCMD=/bin/a --x\n");
    ASSERT_TRUE(ok.app) << errors_of(ok);
    EXPECT_EQ(ok.app->kind, app_kind::oci);
    EXPECT_EQ(ok.app->cmd, "/bin/a --x");
    EXPECT_NE(errors_of(parse_app_file("a.conf", "KIND=oci\n")).find("a.conf: IMAGE: required"),
              std::string::npos);
    std::string e = errors_of(parse_app_file("a.conf", "KIND=oci\nIMAGE=i\nARGS=--memory=1g\n"));
    EXPECT_NE(e.find("a.conf:3: ARGS: podman's, not for KIND=oci"), std::string::npos) << e;
    e = errors_of(parse_app_file("a.conf", "KIND=oci\nIMAGE=i\nPULL=missing\n"));
    EXPECT_NE(e.find("a.conf:3: PULL: podman's, not for KIND=oci"), std::string::npos) << e;
    e = errors_of(parse_app_file("a.conf", "KIND=oci\nIMAGE=i\nREADY=notify\n"));
    EXPECT_NE(e.find("READY: notify needs a Type=notify unit"), std::string::npos) << e;
}

TEST(CtlAppFile, NotifyNeedsANotifyUnit) {
    EXPECT_TRUE(parse_app_file("a.conf", "IMAGE=i\nREADY=notify\n").app);
    EXPECT_TRUE(parse_app_file("a.conf", "KIND=podman-systemd\nIMAGE=i\nREADY=notify\n").app);
    std::string e = errors_of(parse_app_file("a.conf", "KIND=docker\nIMAGE=i\nREADY=notify\n"));
    EXPECT_NE(e.find("a.conf:3: READY: notify needs a Type=notify unit"), std::string::npos) << e;
}

TEST(CtlAppFile, FileNameIsTheAppName) {
    EXPECT_NE(errors_of(parse_app_file("/x/blog.txt", "IMAGE=i\n")).find("must end in .conf"),
              std::string::npos);
    EXPECT_NE(errors_of(parse_app_file("/x/-blog.conf", "IMAGE=i\n")).find("not a valid app name"),
              std::string::npos);
    EXPECT_NE(errors_of(parse_app_file("/x/a b.conf", "IMAGE=i\n")).find("not a valid app name"),
              std::string::npos);
    EXPECT_TRUE(parse_app_file("/x/my.app_1-2.conf", "IMAGE=i\n").app);
}

TEST(CtlAppFile, ValuesAreReadAsSystemdReadsAnEnvironmentFile) {
    struct row {
        const char* line; // after "CMD="
        const char* value;
    };
    for (const row& r : std::initializer_list<row>{
             {R"("a\"b")", R"(a"b)"},
             {R"("a\\b")", R"(a\b)"},
             {R"("a\$b\`c")", "a$b`c"},
             {R"("a\nb")", R"(a\nb)"}, // other escapes keep their backslash in double quotes
             {R"('a\"b')", R"(a\"b)"}, // single quotes are literal
             {R"('a "b" c')", R"(a "b" c)"},
             {R"('it''s')", "its"},
             {R"("a b" c)", "a bc"},
             {R"(a\"b)", R"(a"b)"}, // unquoted: a backslash escapes any character
             {R"(a\\b)", R"(a\b)"},
             {"x   ", "x"},
             {"a\\  ", "a "}, // an escaped space is kept, the one after it trimmed
             {"a#b;c", "a#b;c"},
             {"", ""},
             {"\"\"", ""},
             {"/bin/x \\\n  --flag", "/bin/x   --flag"}, // line continuation
             {"\"one \\\ntwo\"", "one two"},
             {"caf\xc3\xa9", "caf\xc3\xa9"},
         }) {
        parse_result p = parse_app_file("a.conf", std::string("IMAGE=i\nCMD=") + r.line + "\n");
        ASSERT_TRUE(p.app) << r.line << ": " << errors_of(p);
        EXPECT_EQ(p.app->cmd, r.value) << r.line;
    }
    // the line after a continuation keeps its number
    std::string e =
        errors_of(parse_app_file("a.conf", "IMAGE=i\nCMD=/bin/x \\\n  --flag\nQUEUE=x\n"));
    EXPECT_NE(e.find("a.conf:4: QUEUE:"), std::string::npos) << e;
}

TEST(CtlAppFile, InvalidUtf8AndUnterminatedQuotesAreErrors) {
    for (const char* bad : {"caf\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xff", "'\xe2\x82'"}) {
        std::string e =
            errors_of(parse_app_file("a.conf", std::string("IMAGE=i\nCMD=") + bad + "\n"));
        EXPECT_NE(e.find("a.conf:2: CMD: invalid UTF-8"), std::string::npos) << e;
    }
    std::string e = errors_of(parse_app_file("a.conf", "IMAGE=i\nCMD=\"abc\n"));
    EXPECT_NE(e.find("a.conf:2: CMD: unterminated quote"), std::string::npos) << e;
    e = errors_of(parse_app_file("a.conf", "IMAGE=i\nCMD='abc\nQUEUE=1'\n"));
    EXPECT_NE(e.find("a.conf:2: CMD: control characters"), std::string::npos) << e;
}

TEST(CtlAppFile, NginxTimes) {
    for (const char* t : {"0", "30", "500ms", "30s", "5m", "1h", "1m30s", "2d", "1h30m15s"}) {
        EXPECT_TRUE(valid_nginx_time(t)) << t;
    }
    for (const char* t : {"", "s", "3x", "-1s", "1.5s", "10 s", "ms", "1234567890s"}) {
        EXPECT_FALSE(valid_nginx_time(t)) << t;
    }
}

TEST(CtlAppFile, HostNames) {
    for (const char* h : {"example.com", "a.b-c.example", "*.example.com", ".example.com",
                          "localhost", "app01.localhost"}) {
        EXPECT_TRUE(valid_host_name(h)) << h;
    }
    for (const char* h : {"", ".", "a..b", "a.b.", "exa mple", "ex!ample", "*", "*.", "a.*.b"}) {
        EXPECT_FALSE(valid_host_name(h)) << h;
    }
}

TEST(CtlAppFile, DirectoryDuplicateHostsAndBadFiles) {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("ondemand-ctl-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto write = [&](const char* name, const char* text) { std::ofstream(dir / name) << text; };
    write("b.conf", "IMAGE=i\nHOSTS=b.example a.example\n");
    write("a.conf", "IMAGE=i\nHOSTS=a.example\n");
    write("c.conf", "KIND=nope\n");
    write("README", "not an app file\n");
    dir_result d = load_apps_dir(dir);
    ASSERT_EQ(d.apps.size(), 1u);
    EXPECT_EQ(d.apps[0].name, "a"); // sorted; b claims a.example again
    std::string all;
    for (const auto& e : d.errors) {
        all += e.to_string() + "\n";
    }
    EXPECT_NE(all.find("b.conf:2: HOSTS: host \"a.example\" is already claimed by "),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("c.conf:1: KIND:"), std::string::npos) << all;
    fs::remove_all(dir);

    dir_result missing = load_apps_dir(dir);
    EXPECT_TRUE(missing.apps.empty());
    ASSERT_EQ(missing.errors.size(), 1u);
}

TEST(CtlAppFile, AnImageStartingWithADashIsRefusedAsItWouldBeAPodmanOption) {
    std::string e = errors_of(parse_app_file("a.conf", "IMAGE=--privileged\n"));
    EXPECT_NE(e.find("a.conf:1: IMAGE: "), std::string::npos) << e;
    EXPECT_FALSE(parse_app_file("a.conf", "IMAGE=-i\n").app);
    EXPECT_TRUE(parse_app_file("a.conf", "IMAGE=docker.io/library/nginx:1-alpine\n").app);
}

TEST(CtlAppFile, UnknownKeysAreErrorsForEveryKindWithADidYouMeanHint) {
    std::string e = errors_of(parse_app_file("a.conf", "EXEC=/bin/x\nIDLE_TIMOUT=5m\n"));
    EXPECT_NE(e.find("a.conf:2: IDLE_TIMOUT: unknown key; did you mean IDLE_TIMEOUT?"),
              std::string::npos)
        << e;
    e = errors_of(parse_app_file("a.conf", "IMAGE=i\nHOST=a.example\n"));
    EXPECT_NE(e.find("a.conf:2: HOST: unknown key; did you mean HOSTS?"), std::string::npos) << e;
    e = errors_of(parse_app_file("a.conf", "IMAGE=i\nFOO=1\n"));
    EXPECT_NE(e.find("a.conf:2: FOO: unknown key"), std::string::npos) << e;
    EXPECT_EQ(e.find("did you mean"), std::string::npos) << e;
}

TEST(CtlAppFile, ReadyHttpPathsHoldOnlyUrlPathCharacters) {
    for (const char* ok : {"http:/", "http:/healthz", "http:/a-b._~/%2F!$&'()*+,=:@?x=1"}) {
        EXPECT_TRUE(parse_app_file("a.conf", std::string("IMAGE=i\nREADY=") + ok + "\n").app) << ok;
    }
    for (const char* bad : {"http:/a;b", "http:/{x}", "http:/a#b", "http:/a\"b", "http:/a b",
                            "http:/a\\b", "http:/a<b>", "http:/a`b", "http:/a^b", "http:/a|b"}) {
        std::string e =
            errors_of(parse_app_file("a.conf", std::string("IMAGE=i\nREADY='") + bad + "'\n"));
        EXPECT_NE(e.find("a.conf:2: READY: "), std::string::npos) << bad << ": " << e;
    }
}

TEST(CtlAppFile, NginxTimesFollowNginxsGrammarUnitsDecreasingEachOnce) {
    for (const char* t : {"1y1M1w1d1h1m1s1ms", "1m30", "1h30m", "1s500ms", "0s"}) {
        EXPECT_TRUE(valid_nginx_time(t)) << t;
    }
    for (const char* t : {"30s1m", "1s1s", "1ms1s", "5m1h", "1d1y", "1m1m", "1ms1ms"}) {
        EXPECT_FALSE(valid_nginx_time(t)) << t;
    }
    EXPECT_EQ(nginx_time_ms("1m30"), 90'000u);
}

TEST(CtlAppFile, AStartTimeoutOfZeroIsRefusedButAnIdleTimeoutOfZeroMeansNeverStop) {
    std::string e = errors_of(parse_app_file("a.conf", "IMAGE=i\nSTART_TIMEOUT=0\n"));
    EXPECT_NE(e.find("a.conf:2: START_TIMEOUT: "), std::string::npos) << e;
    EXPECT_FALSE(parse_app_file("a.conf", "IMAGE=i\nSTART_TIMEOUT=0s\n").app);
    EXPECT_TRUE(parse_app_file("a.conf", "IMAGE=i\nIDLE_TIMEOUT=0\n").app);
}

TEST(CtlAppFile, AnAppWithoutHostsGetsAWarningThatDoesNotMakeItInvalid) {
    parse_result r = parse_app_file("/x/a.conf", "IMAGE=i\n");
    ASSERT_TRUE(r.app) << errors_of(r);
    ASSERT_EQ(r.errors.size(), 1u) << errors_of(r);
    EXPECT_EQ(r.errors[0].level, severity::warning);
    EXPECT_EQ(r.errors[0].to_string(),
              "/x/a.conf: HOSTS: warning: no HOSTS: nothing routes requests to this app");
    parse_result h = parse_app_file("/x/a.conf", "IMAGE=i\nHOSTS=a.example\n");
    EXPECT_TRUE(h.errors.empty()) << errors_of(h);
    diagnostic d{"/x/a.conf", 3, "K", "bad"};
    EXPECT_EQ(d.to_string(), "/x/a.conf:3: K: bad");
}

TEST(CtlAppFile, HostNamesAreComparedCaseInsensitivelyAndADotPrefixClaimsTheBareName) {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("ondemand-ctl-hosts-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto write = [&](const char* name, const char* text) { std::ofstream(dir / name) << text; };
    write("a.conf", "IMAGE=i\nHOSTS=Example.COM\n");
    write("b.conf", "IMAGE=i\nHOSTS=example.com\n");
    write("c.conf", "IMAGE=i\nHOSTS=.shop.example\n");
    write("d.conf", "IMAGE=i\nHOSTS=shop.example\n");
    write("e.conf", "IMAGE=i\nHOSTS=www.Other.Example\n");
    dir_result d = load_apps_dir(dir);
    std::string all;
    for (const auto& e : d.errors) {
        all += e.to_string() + "\n";
    }
    EXPECT_NE(all.find("b.conf:2: HOSTS: host \"example.com\" is already claimed by " +
                       (dir / "a.conf").string()),
              std::string::npos)
        << all;
    EXPECT_NE(all.find("d.conf:2: HOSTS: host \"shop.example\" is already claimed by " +
                       (dir / "c.conf").string()),
              std::string::npos)
        << all;
    ASSERT_EQ(d.apps.size(), 3u) << all;
    EXPECT_EQ(d.apps[0].hosts, std::vector<std::string>{"example.com"});
    EXPECT_EQ(d.apps[2].hosts, std::vector<std::string>{"www.other.example"});
    fs::remove_all(dir);
}
