// helperd's app registry: the app files read with ondemandctl's parser, and which request
// lines it refuses (unknown apps; a START, STOP or FREEZE that disagrees with the app file).
#include "app_file.h"
#include "registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using namespace ondemand::helperd;
namespace proto = ondemand::proto;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::HasSubstr;

const registered_app blog{"blog",
                          "/etc/ondemand/apps/blog.conf",
                          "ondemand-exec@blog.service",
                          "/run/ondemand/apps/blog/app.sock",
                          "connect",
                          45s};

proto::message parsed(const std::string& line) {
    static std::string keep; // the message's views point into it
    keep = line;
    proto::parse_result r = proto::parse(keep);
    EXPECT_TRUE(r.ok) << line << ": " << (r.error != nullptr ? r.error : "");
    return r.msg;
}

std::optional<std::string> refusal(const std::string& line) {
    app_registry registry({blog});
    return registry.refusal(parsed(line));
}

TEST(HelperdRegistry, AStartThatMatchesItsAppFileIsInOrder) {
    EXPECT_EQ(refusal("START blog 1 ondemand-exec@blog.service connect 1 "
                      "/run/ondemand/apps/blog/app.sock"),
              std::nullopt);
    EXPECT_EQ(refusal("WAIT blog 1"), std::nullopt);
    EXPECT_EQ(refusal("STOP blog 1 ondemand-exec@blog.service"), std::nullopt);
    EXPECT_EQ(refusal("STOP blog 1 ondemand-exec@blog.service force"), std::nullopt);
    EXPECT_EQ(refusal("FREEZE blog 1 ondemand-exec@blog.service"), std::nullopt);
    EXPECT_EQ(refusal("USE blog 1 5000"), std::nullopt);
}

TEST(HelperdRegistry, EveryRequestNamingAnAppWithoutAFileIsRefusedAsUnknown) {
    for (const char* line :
         {"START evil 1 ondemand-exec@blog.service connect 1 /run/ondemand/apps/blog/app.sock",
          "WAIT evil 1", "STOP evil 0 ondemand-exec@blog.service",
          "FREEZE evil 0 ondemand-exec@blog.service", "USE evil 1 5000"}) {
        EXPECT_EQ(refusal(line), "unknown app evil") << line;
    }
}

TEST(HelperdRegistry, AStartWithAnotherUnitSocketOrReadyModeIsRefusedNamingTheField) {
    EXPECT_EQ(refusal("START blog 1 ondemand-exec@www.service connect 1 "
                      "/run/ondemand/apps/blog/app.sock"),
              "START disagrees with /etc/ondemand/apps/blog.conf: unit ondemand-exec@blog.service "
              "(START has ondemand-exec@www.service)");
    EXPECT_EQ(refusal("START blog 1 ondemand-exec@blog.service connect 1 /tmp/evil.sock"),
              "START disagrees with /etc/ondemand/apps/blog.conf: socket "
              "/run/ondemand/apps/blog/app.sock (START has /tmp/evil.sock)");
    EXPECT_EQ(refusal("START blog 1 ondemand-exec@blog.service http:/x 1 "
                      "/run/ondemand/apps/blog/app.sock"),
              "START disagrees with /etc/ondemand/apps/blog.conf: ready connect (START has "
              "http:/x)");
}

TEST(HelperdRegistry, AStopOrFreezeOfAnotherUnitIsRefused) {
    EXPECT_THAT(refusal("STOP blog 0 ondemand-exec@www.service force").value_or(""),
                HasSubstr("STOP disagrees with /etc/ondemand/apps/blog.conf: unit "));
    EXPECT_THAT(refusal("FREEZE blog 0 ondemand-exec@www.service").value_or(""),
                HasSubstr("FREEZE disagrees with /etc/ondemand/apps/blog.conf: unit "));
}

TEST(HelperdRegistry, LinesThatNameNoAppAreNeverRefused) {
    EXPECT_EQ(refusal("HELLO nginx-1"), std::nullopt);
    EXPECT_EQ(refusal("STATUS"), std::nullopt);
}

class HelperdRegistryDir : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "odreg-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        dir = tmpl;
    }
    void TearDown() override { fs::remove_all(dir); }
    void write(const std::string& name, const std::string& text) {
        std::ofstream(dir / name) << text;
    }
    fs::path dir;
};

TEST_F(HelperdRegistryDir, AppFilesGiveEachAppItsUnitSocketReadyModeAndStartTimeout) {
    write("blog.conf", "KIND=exec\nEXEC=/bin/app\n");
    write("shop.conf", "IMAGE=localhost/shop\nREADY=http:/health\nSTART_TIMEOUT=1m30s\n");
    write("README", "not an app file\n");
    registry_load r = load_registry(dir, "/run/x/apps");
    EXPECT_TRUE(r.problems.empty()) << r.problems.front();
    ASSERT_EQ(r.registry.size(), 2u);
    const registered_app* b = r.registry.find("blog");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->unit, "ondemand-exec@blog.service");
    EXPECT_EQ(b->socket, "/run/x/apps/blog/app.sock");
    EXPECT_EQ(b->ready, "connect");
    EXPECT_EQ(b->start_timeout, 30s) << "the module's default start_timeout";
    EXPECT_EQ(b->file, (dir / "blog.conf").string());
    const registered_app* s = r.registry.find("shop");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->unit, "ondemand-podman@shop.service");
    EXPECT_EQ(s->ready, "http:/health");
    EXPECT_EQ(s->start_timeout, 90s);
    EXPECT_EQ(r.registry.find("README"), nullptr);
}

TEST_F(HelperdRegistryDir, AnAppFileWithErrorsIsLeftOutAndItsProblemsAreReported) {
    write("good.conf", "KIND=exec\nEXEC=/bin/app\n");
    write("bad.conf", "KIND=exec\nSTART_TIMEOUT=soon\n");
    registry_load r = load_registry(dir, "/run/ondemand/apps");
    EXPECT_EQ(r.registry.size(), 1u);
    EXPECT_EQ(r.registry.find("bad"), nullptr);
    ASSERT_FALSE(r.problems.empty());
    EXPECT_THAT(r.problems[0], HasSubstr("bad.conf"));
    EXPECT_TRUE(r.read);
}

TEST_F(HelperdRegistryDir, AMissingDirectoryIsAnEmptyRegistryWithAProblem) {
    registry_load r = load_registry(dir / "missing", "/run/ondemand/apps");
    EXPECT_EQ(r.registry.size(), 0u);
    ASSERT_EQ(r.problems.size(), 1u);
    EXPECT_THAT(r.problems[0], HasSubstr("missing: not a directory"));
    EXPECT_FALSE(r.read);
}

TEST(HelperdRegistry, TheAppsSocketDirectoryIsTheManagersRuntimeDirectory) {
    EXPECT_EQ(default_app_socket_dir(false), "/run/ondemand/apps");
    ::setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    EXPECT_EQ(default_app_socket_dir(true), "/run/user/1000/ondemand/apps");
}

TEST(NginxTime, MillisecondsAsNginxReadsThem) {
    using ondemand::ctl::nginx_time_ms;
    EXPECT_EQ(nginx_time_ms("500ms"), 500u);
    EXPECT_EQ(nginx_time_ms("30s"), 30000u);
    EXPECT_EQ(nginx_time_ms("30"), 30000u) << "a number without a unit is seconds";
    EXPECT_EQ(nginx_time_ms("1m30s"), 90000u);
    EXPECT_EQ(nginx_time_ms("2h"), 7200000u);
    EXPECT_EQ(nginx_time_ms("1d"), 86400000u);
    EXPECT_EQ(nginx_time_ms("0"), 0u);
    EXPECT_EQ(nginx_time_ms("soon"), std::nullopt);
    EXPECT_EQ(nginx_time_ms(""), std::nullopt);
}

} // namespace
