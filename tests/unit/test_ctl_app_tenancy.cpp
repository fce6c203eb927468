// Each app is a tenant (issue #15): the app-file keys USER, WORKDIR, MEMORY_MAX, CPU_WEIGHT and
// NETWORK, the drop-ins `ondemandctl apply` writes from them (and removes when stale), and
// `check`'s file-mode warnings.
#include "app_file.h"
#include "app_file_testing.h"
#include "app_tenancy.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

using namespace ondemand::ctl;
using ondemand::ctl::test_support::errors_of;
namespace fs = std::filesystem;

namespace {

app_config must_parse(const std::string& path, const std::string& text) {
    parse_result r = parse_app_file(path, text);
    EXPECT_TRUE(r.app) << errors_of(r);
    return r.app ? *r.app : app_config{};
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream b;
    b << in.rdbuf();
    return b.str();
}

struct temp_dir {
    fs::path path;
    temp_dir() {
        std::string t = (fs::temp_directory_path() / "ctl-tenancy.XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace

TEST(CtlAppTenancy, ExecAppWithEveryTenancyKeyGetsADropIn) {
    app_config a = must_parse("/etc/ondemand/apps/wiki.conf", "EXEC=/srv/wiki/run\n"
                                                              "USER=wiki\n"
                                                              "WORKDIR=/srv/wiki\n"
                                                              "MEMORY_MAX=512M\n"
                                                              "CPU_WEIGHT=50\n"
                                                              "NETWORK=host\n"
                                                              "HOSTS=wiki.example.com\n");
    EXPECT_EQ(a.user, "wiki");
    EXPECT_EQ(a.workdir, "/srv/wiki");
    EXPECT_EQ(a.memory_max, "512M");
    EXPECT_EQ(a.cpu_weight, "50");
    EXPECT_EQ(a.network, "host");
    std::string d = unit_dropin(a);
    EXPECT_NE(d.find("# Written by `ondemandctl apply` from /etc/ondemand/apps/wiki.conf"),
              std::string::npos)
        << d;
    EXPECT_NE(d.find("[Service]\nDynamicUser=no\nUser=wiki\nWorkingDirectory=/srv/wiki\n"
                     "PrivateNetwork=no\nMemoryMax=512M\nCPUWeight=50\n"),
              std::string::npos)
        << d;
}

TEST(CtlAppTenancy, AnExecAppAtTheDefaultsGetsADynamicUserOfItsOwn) {
    app_config a = must_parse("a.conf", "EXEC=/bin/x\nHOSTS=a.example\n");
    EXPECT_EQ(a.network, "none");
    std::string d = unit_dropin(a);
    EXPECT_EQ(d.substr(d.find("[Service]")), "[Service]\nUser=ondemand-a\n");
    a = must_parse("a.conf", "EXEC=/bin/x\nNETWORK=none\nHOSTS=a.example\n");
    EXPECT_EQ(unit_dropin(a), d);
    EXPECT_EQ(dynamic_user_name("wiki-2_x"), "ondemand-wiki-2_x");
    // Not [a-z0-9_-], or too long for a user name (31): a prefix and a hash, distinct.
    std::string upper = dynamic_user_name("Wiki"), lower = dynamic_user_name("wiki");
    EXPECT_NE(upper, lower);
    EXPECT_EQ(upper.substr(0, 14), "ondemand-wiki-");
    std::string dotted = dynamic_user_name("my.app.example.com.with.a.long.name");
    EXPECT_EQ(dotted.substr(0, 22), "ondemand-my_app_exampl");
    EXPECT_LE(dotted.size(), 31u);
    EXPECT_NE(dotted, dynamic_user_name("my.app.example.com.with.a.long.nam"));
}

TEST(CtlAppTenancy, ContainerDefaultsNeedNoDropIn) {
    app_config a = must_parse("a.conf", "IMAGE=i\nHOSTS=a.example\n");
    EXPECT_EQ(unit_dropin(a), "");
    // A container's NETWORK reaches `podman run --network` through the template, not a drop-in.
    a = must_parse("a.conf", "IMAGE=i\nNETWORK=web\nHOSTS=a.example\n");
    EXPECT_EQ(a.network, "web");
    EXPECT_EQ(unit_dropin(a), "");
    a = must_parse("a.conf", "IMAGE=i\nMEMORY_MAX=1G\nCPU_WEIGHT=200\nHOSTS=a.example\n");
    EXPECT_EQ(unit_dropin(a).substr(unit_dropin(a).find("[Service]")),
              "[Service]\nMemoryMax=1G\nCPUWeight=200\n");
}

TEST(CtlAppTenancy, BadValuesAreErrorsNamingFileLineAndKey) {
    struct bad {
        const char* text;
        const char* want;
    };
    for (const bad& b : {
             bad{"EXEC=x\nUSER=Bad User\n", "a.conf:2: USER: \"Bad User\" is not a user name"},
             bad{"EXEC=x\nWORKDIR=srv/wiki\n",
                 "a.conf:2: WORKDIR: \"srv/wiki\" is not an absolute"},
             bad{"EXEC=x\nWORKDIR=/srv/../etc\n", "a.conf:2: WORKDIR: "},
             bad{"EXEC=x\nWORKDIR=/srv/%n\n", "a.conf:2: WORKDIR: "},
             bad{"EXEC=x\nMEMORY_MAX=lots\n", "a.conf:2: MEMORY_MAX: \"lots\" is not a size"},
             bad{"EXEC=x\nMEMORY_MAX=0\n", "a.conf:2: MEMORY_MAX: "},
             bad{"EXEC=x\nMEMORY_MAX=101%\n", "a.conf:2: MEMORY_MAX: "},
             bad{"EXEC=x\nCPU_WEIGHT=0\n", "a.conf:2: CPU_WEIGHT: \"0\" is not a number from 1"},
             bad{"EXEC=x\nCPU_WEIGHT=10001\n", "a.conf:2: CPU_WEIGHT: "},
             bad{"EXEC=x\nNETWORK=web\n", "a.conf:2: NETWORK: \"web\": an exec app's NETWORK"},
             bad{"KIND=oci\nIMAGE=i\nNETWORK=web\n",
                 "a.conf:3: NETWORK: \"web\": a KIND=oci app's NETWORK is none"},
             bad{"IMAGE=i\nNETWORK=-x\n", "a.conf:2: NETWORK: \"-x\" is not none, host"},
             bad{"IMAGE=i\nNETWORK=container:db\n", "a.conf:2: NETWORK: "},
             bad{"IMAGE=i\nUSER=app\n", "a.conf:2: USER: only for KIND=exec"},
             bad{"IMAGE=i\nWORKDIR=/srv\n", "a.conf:2: WORKDIR: only for KIND=exec"},
             bad{"KIND=docker\nIMAGE=i\nMEMORY_MAX=1G\n", "a.conf:3: MEMORY_MAX: docker runs"},
             bad{"KIND=docker\nIMAGE=i\nCPU_WEIGHT=5\n", "a.conf:3: CPU_WEIGHT: docker runs"},
             bad{"IMAGE=i\nARGS=--memory=1g --network=host\n",
                 "a.conf:2: ARGS: \"--network=host\": set the network with NETWORK="},
             bad{"IMAGE=i\nARGS=--net host\n", "a.conf:2: ARGS: \"--net\": set the network"},
         }) {
        parse_result r = parse_app_file("a.conf", b.text);
        EXPECT_FALSE(r.app) << b.text;
        EXPECT_NE(errors_of(r).find(b.want), std::string::npos) << b.text << "\n" << errors_of(r);
    }
}

TEST(CtlAppTenancy, GoodValues) {
    for (const char* text :
         {"EXEC=x\nUSER=www-data\n", "EXEC=x\nUSER=1000\n", "EXEC=x\nUSER=_svc\n",
          "EXEC=x\nWORKDIR=/srv/my-app_1.0/x\n", "EXEC=x\nMEMORY_MAX=1073741824\n",
          "EXEC=x\nMEMORY_MAX=2G\n", "EXEC=x\nMEMORY_MAX=50%\n", "EXEC=x\nMEMORY_MAX=infinity\n",
          "EXEC=x\nCPU_WEIGHT=1\n", "EXEC=x\nCPU_WEIGHT=10000\n", "IMAGE=i\nNETWORK=host\n",
          "IMAGE=i\nNETWORK=my_net.1-a\n", "KIND=docker\nIMAGE=i\nNETWORK=bridge\n",
          "IMAGE=i\nARGS=--networkish=1\n"}) {
        parse_result r = parse_app_file("a.conf", text);
        EXPECT_TRUE(r.app) << text << errors_of(r);
    }
}

TEST(CtlAppTenancy, UserRootIsAWarning) {
    parse_result r = parse_app_file("a.conf", "EXEC=x\nUSER=root\nHOSTS=a.example\n");
    ASSERT_TRUE(r.app) << errors_of(r);
    EXPECT_NE(errors_of(r).find("a.conf:2: USER: warning: the app runs as root"), std::string::npos)
        << errors_of(r);
}

TEST(CtlAppTenancy, TyposOfTheNewKeysGetAHint) {
    std::string e = errors_of(parse_app_file("a.conf", "IMAGE=i\nMEMORYMAX=1G\n"));
    EXPECT_NE(e.find("a.conf:2: MEMORYMAX: unknown key; did you mean MEMORY_MAX?"),
              std::string::npos)
        << e;
    e = errors_of(parse_app_file("a.conf", "EXEC=x\nNETWROK=host\n"));
    EXPECT_NE(e.find("a.conf:2: NETWROK: unknown key; did you mean NETWORK?"), std::string::npos)
        << e;
}

TEST(CtlAppTenancy, ApplyWritesChangesAndRemovesStaleDropIns) {
    temp_dir t;
    std::vector<app_config> apps = {
        must_parse("/e/wiki.conf", "EXEC=x\nUSER=wiki\nHOSTS=w.example\n"),
        must_parse("/e/blog.conf", "IMAGE=i\nMEMORY_MAX=256M\nHOSTS=b.example\n"),
        must_parse("/e/plain.conf", "EXEC=x\nHOSTS=p.example\n"),
    };
    // An operator's own drop-in for an app, next to ours: it stays.
    fs::create_directories(t.path / "ondemand-exec@wiki.service.d");
    std::ofstream(t.path / "ondemand-exec@wiki.service.d/90-mine.conf") << "[Service]\n";
    apply_result r = apply_dropins(apps, t.path);
    EXPECT_EQ(r.written.size(), 3u);
    EXPECT_TRUE(r.removed.empty());
    fs::path wiki = t.path / "ondemand-exec@wiki.service.d/50-ondemand-app.conf";
    fs::path blog = t.path / "ondemand-podman@blog.service.d/50-ondemand-app.conf";
    EXPECT_NE(slurp(wiki).find("User=wiki\n"), std::string::npos);
    EXPECT_NE(slurp(blog).find("MemoryMax=256M\n"), std::string::npos);
    EXPECT_NE(slurp(t.path / "ondemand-exec@plain.service.d/50-ondemand-app.conf")
                  .find("User=ondemand-plain\n"),
              std::string::npos);
    struct stat st {};
    ASSERT_EQ(::stat(wiki.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);

    // Again: nothing to do.
    r = apply_dropins(apps, t.path);
    EXPECT_FALSE(r.changed());
    EXPECT_EQ(r.unchanged.size(), 3u);

    // wiki drops USER (back to a dynamic user), blog is removed, plain gets a limit.
    apps = {must_parse("/e/wiki.conf", "EXEC=x\nHOSTS=w.example\n"),
            must_parse("/e/plain.conf", "EXEC=x\nCPU_WEIGHT=20\nHOSTS=p.example\n")};
    r = apply_dropins(apps, t.path);
    EXPECT_EQ(r.removed.size(), 1u);
    EXPECT_EQ(r.written.size(), 2u);
    EXPECT_NE(slurp(wiki).find("User=ondemand-wiki\n"), std::string::npos);
    EXPECT_EQ(slurp(wiki).find("DynamicUser=no"), std::string::npos);

    // wiki is removed: its drop-in goes, the operator's own one next to it stays.
    apps.erase(apps.begin());
    r = apply_dropins(apps, t.path);
    EXPECT_EQ(r.removed.size(), 1u);
    EXPECT_FALSE(fs::exists(wiki));
    EXPECT_TRUE(fs::exists(t.path / "ondemand-exec@wiki.service.d/90-mine.conf"));
    EXPECT_FALSE(fs::exists(t.path / "ondemand-podman@blog.service.d"));
    EXPECT_NE(
        slurp(t.path / "ondemand-exec@plain.service.d/50-ondemand-app.conf").find("CPUWeight=20\n"),
        std::string::npos);

    // A KIND change moves the drop-in to the new unit.
    apps = {must_parse("/e/plain.conf", "KIND=podman-simple\nIMAGE=i\nCPU_WEIGHT=20\n")};
    r = apply_dropins(apps, t.path);
    EXPECT_FALSE(fs::exists(t.path / "ondemand-exec@plain.service.d"));
    EXPECT_TRUE(fs::exists(t.path / "ondemand-podman-simple@plain.service.d/50-ondemand-app.conf"));
}

TEST(CtlAppTenancy, CheckWarnsAboutDropInsNotAppliedYet) {
    temp_dir t;
    std::vector<app_config> apps = {
        must_parse("/e/wiki.conf", "EXEC=x\nUSER=wiki\nHOSTS=w.example\n"),
        must_parse("/e/plain.conf", "IMAGE=i\nHOSTS=p.example\n"),
    };
    auto w = dropin_warnings(apps, t.path);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].file, "/e/wiki.conf");
    EXPECT_NE(w[0].message.find("run ondemandctl apply"), std::string::npos);
    apply_dropins(apps, t.path);
    EXPECT_TRUE(dropin_warnings(apps, t.path).empty());
    // The key is removed from the file, the drop-in is still there.
    apps[0] = must_parse("/e/wiki.conf", "EXEC=x\nHOSTS=w.example\n");
    EXPECT_EQ(dropin_warnings(apps, t.path).size(), 1u);
}

TEST(CtlAppTenancy, FileModeWarnings) {
    temp_dir t;
    fs::path f = t.path / "a.conf";
    std::ofstream(f) << "EXEC=x\n";
    ::chmod(f.c_str(), 0640);
    ::chmod(t.path.c_str(), 0750);
    bool root = ::geteuid() == 0;
    EXPECT_EQ(file_mode_warnings(f, false).size(), root ? 0u : 1u); // not root: "owned by uid"
    EXPECT_TRUE(file_mode_warnings(t.path, true).empty());
    ::chmod(f.c_str(), 0664);
    auto w = file_mode_warnings(f, false);
    ASSERT_FALSE(w.empty());
    EXPECT_EQ(w[0].level, severity::warning);
    EXPECT_NE(w[0].to_string().find("a.conf: warning: mode 0664: writable by its group or others"),
              std::string::npos)
        << w[0].to_string();
    EXPECT_NE(w[1].message.find("readable by every local user"), std::string::npos);
    ::chmod(t.path.c_str(), 0755);
    w = file_mode_warnings(t.path, true);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].message.find("mode 0755: every local user may read"), std::string::npos);
}
