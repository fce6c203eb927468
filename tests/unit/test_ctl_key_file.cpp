// ondemandctl's key file reader (ctl/helper_client.h): the key, or why there is none.
#include "helper_client.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace ctl = ondemand::ctl;
using status = ctl::key_file_result::status;

namespace {

std::string temp_file(const std::string& contents) {
    std::string tmpl = "/tmp/odc-key-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    ::close(fd);
    return tmpl;
}

} // namespace

TEST(CtlKeyFile, ReadsTheKey) {
    std::string path = temp_file(std::string(64, 'c') + "\n");
    ctl::key_file_result r = ctl::read_key_file(path);
    EXPECT_EQ(r.state, status::ok);
    EXPECT_EQ(r.key, std::string(64, 'c'));
    std::filesystem::remove(path);
}

TEST(CtlKeyFile, SaysWhyThereIsNone) {
    ctl::key_file_result missing = ctl::read_key_file("/nonexistent/helperd.key");
    EXPECT_EQ(missing.state, status::missing);
    EXPECT_EQ(missing.why, "cannot open /nonexistent/helperd.key: No such file or directory");

    std::string empty = temp_file("");
    ctl::key_file_result e = ctl::read_key_file(empty);
    EXPECT_EQ(e.state, status::invalid);
    EXPECT_EQ(e.why, "key file " + empty + " is empty");
    std::filesystem::remove(empty);

    std::string spaced = temp_file("0123456789 abcdef0123\n");
    EXPECT_EQ(ctl::read_key_file(spaced).state, status::invalid);
    std::filesystem::remove(spaced);

    std::string big = temp_file(std::string(4000, 'a'));
    EXPECT_EQ(ctl::read_key_file(big).why,
              "key file " + big + " holds a key longer than 256 bytes");
    std::filesystem::remove(big);
}
