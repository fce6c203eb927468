// ondemandctl prepare's pure parts: reading `podman image inspect` and writing config.json.
#include "prepare.h"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace ondemand::ctl;
using nlohmann::json;

namespace {

app_config oci_app(const std::string& cmd) {
    parse_result r = parse_app_file("/etc/ondemand/apps/blog.conf",
                                    "KIND=oci\nIMAGE=localhost/blog:1\n" +
                                        (cmd.empty() ? std::string() : "CMD=" + cmd + "\n"));
    if (!r.app) {
        throw std::runtime_error("bad app file");
    }
    return *r.app;
}

} // namespace

TEST(CtlPrepare, ReadsPodmanImageInspect) {
    auto img = parse_image_inspect(
        R"([{"Id":"abc123","Config":{"Env":["PATH=/bin","A=1"],"Entrypoint":["/bin/blog"],)"
        R"("Cmd":["--fast"],"WorkingDir":"/srv","User":"1000:100"}}])");
    ASSERT_TRUE(img);
    EXPECT_EQ(img->id, "abc123");
    EXPECT_EQ(img->env, (std::vector<std::string>{"PATH=/bin", "A=1"}));
    EXPECT_EQ(img->entrypoint, std::vector<std::string>{"/bin/blog"});
    EXPECT_EQ(img->cmd, std::vector<std::string>{"--fast"});
    EXPECT_EQ(img->workdir, "/srv");
    EXPECT_EQ(img->user, "1000:100");

    auto bare = parse_image_inspect(R"([{"Id":"x","Config":{}}])");
    ASSERT_TRUE(bare);
    EXPECT_TRUE(bare->env.empty());
    EXPECT_FALSE(parse_image_inspect("[]"));
    EXPECT_FALSE(parse_image_inspect("Error: no such image"));
    EXPECT_FALSE(parse_image_inspect(R"([{"Config":{}}])"));
}

TEST(CtlPrepare, ConfigIsAContainerInTheUnitsCgroup) {
    image_info img{"id", {"A=1"}, {}, {}, "", ""};
    json c = oci_config(oci_app("/bin/blog  --socket /run/ondemand/app.sock"), img,
                        "/run/ondemand/apps");
    EXPECT_EQ(c["process"]["args"],
              json({"/bin/blog", "--socket", "/run/ondemand/app.sock"})); // split as systemd does
    EXPECT_EQ(c["process"]["env"], json({"A=1",
                                         "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                         "/usr/bin:/sbin:/bin",
                                         "ONDEMAND_SOCKET=/run/ondemand/app.sock"}));
    EXPECT_EQ(c["process"]["cwd"], "/");
    EXPECT_EQ(c["process"]["user"], json({{"uid", 0}, {"gid", 0}}));
    EXPECT_TRUE(c["process"]["noNewPrivileges"].get<bool>());
    EXPECT_EQ(c["root"], json({{"path", "rootfs"}, {"readonly", true}}));
    EXPECT_EQ(c["hostname"], "blog");
    std::vector<std::string> ns;
    for (const auto& n : c["linux"]["namespaces"]) {
        ns.push_back(n["type"]);
    }
    EXPECT_EQ(ns, (std::vector<std::string>{"pid", "network", "ipc", "uts", "mount"}));
    EXPECT_FALSE(c["linux"].contains("resources")); // no cgroup of its own: the unit's
    bool socket = false, tmp = false;
    for (const auto& m : c["mounts"]) {
        if (m["destination"] == "/run/ondemand") {
            socket = m["source"] == "/run/ondemand/apps/blog" && m["type"] == "bind";
        }
        tmp = tmp || (m["destination"] == "/tmp" && m["type"] == "tmpfs");
    }
    EXPECT_TRUE(socket) << c["mounts"].dump();
    EXPECT_TRUE(tmp);
}

TEST(CtlPrepare, NetworkHostSharesTheHostsNetworkNamespace) {
    parse_result r = parse_app_file("/etc/ondemand/apps/blog.conf",
                                    "KIND=oci\nIMAGE=localhost/blog:1\nNETWORK=host\n");
    ASSERT_TRUE(r.app);
    image_info img{"id", {}, {"/bin/blog"}, {}, "", ""};
    json c = oci_config(*r.app, img, "/run/ondemand/apps");
    std::vector<std::string> ns;
    for (const auto& n : c["linux"]["namespaces"]) {
        ns.push_back(n["type"]);
    }
    EXPECT_EQ(ns, (std::vector<std::string>{"pid", "ipc", "uts", "mount"}));
}

TEST(CtlPrepare, CommandFromTheImageWithoutCmd) {
    image_info img{"id", {"PATH=/x"}, {"/bin/entry"}, {"serve"}, "/srv", "1000"};
    json c = oci_config(oci_app(""), img, "/run/ondemand/apps");
    EXPECT_EQ(c["process"]["args"], json({"/bin/entry", "serve"}));
    EXPECT_EQ(c["process"]["env"], json({"PATH=/x", "ONDEMAND_SOCKET=/run/ondemand/app.sock"}));
    EXPECT_EQ(c["process"]["cwd"], "/srv");
    EXPECT_EQ(c["process"]["user"], json({{"uid", 1000}, {"gid", 1000}}));

    EXPECT_THROW(oci_config(oci_app(""), image_info{"id", {}, {}, {}, "", ""}, "/r"),
                 std::runtime_error); // no command at all
    EXPECT_THROW(oci_config(oci_app("/bin/a"), image_info{"id", {}, {}, {}, "", "www"}, "/r"),
                 std::runtime_error); // a user name: needs the image's passwd
}
