// helperd/auth: the key comparison, the key file reader, /proc/PID/stat's parent pid (a comm
// with spaces and parentheses), and the instance name registry.
#include "auth.h"
#include "ondemand_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace helperd = ondemand::helperd;
namespace proto = ondemand::proto;
using ::testing::HasSubstr;

namespace {

std::string temp_file(const std::string& contents) {
    std::string tmpl = "/tmp/odh-key-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    ::close(fd);
    return tmpl;
}

std::string read_error(const std::string& path) {
    try {
        helperd::read_key_file(path);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "<no error>";
}

} // namespace

TEST(HelperdAuth, KeysEqual) {
    std::string k(64, 'a');
    EXPECT_TRUE(helperd::keys_equal(k, k));
    EXPECT_FALSE(helperd::keys_equal(k, std::string(63, 'a')));
    EXPECT_FALSE(helperd::keys_equal(k, std::string(65, 'a')));
    std::string last = k;
    last.back() = 'b';
    EXPECT_FALSE(helperd::keys_equal(k, last));
    std::string first = k;
    first.front() = 'b';
    EXPECT_FALSE(helperd::keys_equal(k, first));
    EXPECT_FALSE(helperd::keys_equal(k, ""));
    std::string max(proto::max_key_length, 'z');
    EXPECT_TRUE(helperd::keys_equal(max, max));
    // Longer than the buffer: never equal, even when the first max_key_length bytes are.
    EXPECT_FALSE(helperd::keys_equal(max + "z", max + "z"));
    // A key with NUL padding is not the key.
    EXPECT_FALSE(helperd::keys_equal(k, k + std::string(1, '\0')));
}

TEST(HelperdAuth, SharedKey) {
    helperd::shared_key none;
    EXPECT_FALSE(none.required());
    EXPECT_FALSE(none.matches("")) << "no key: nothing matches (the server does not ask)";
    helperd::shared_key key(std::string(32, 'k'));
    EXPECT_TRUE(key.required());
    EXPECT_TRUE(key.matches(std::string(32, 'k')));
    EXPECT_FALSE(key.matches(std::string(31, 'k')));
    EXPECT_FALSE(key.matches(""));
}

TEST(HelperdAuth, ReadKeyFile) {
    std::string good = temp_file(std::string(64, 'f') + "\n");
    EXPECT_EQ(helperd::read_key_file(good), std::string(64, 'f'));
    std::filesystem::remove(good);

    std::string empty = temp_file("");
    EXPECT_EQ(read_error(empty), "key file " + empty + ": is empty");
    std::filesystem::remove(empty);

    std::string big = temp_file(std::string(10000, 'a'));
    EXPECT_EQ(read_error(big), "key file " + big + ": holds a key longer than 256 bytes");
    std::filesystem::remove(big);

    std::string binary = temp_file(std::string(32, 'a') + "\x01\n");
    EXPECT_THAT(read_error(binary), HasSubstr("a control character"));
    std::filesystem::remove(binary);

    EXPECT_EQ(read_error("/nonexistent/helperd.key"),
              "key file /nonexistent/helperd.key: cannot open: No such file or directory");
    EXPECT_EQ(read_error("/tmp"), "key file /tmp: not a regular file");

    // Unreadable for another uid (root reads anything: drop to nobody in a child).
    std::string secret = temp_file(std::string(64, 's'));
    ::chmod(secret.c_str(), 0600);
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::getuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) {
            ::_exit(2);
        }
        ::_exit(read_error(secret) == "key file " + secret + ": cannot open: Permission denied"
                    ? 0
                    : 1);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (::getuid() == 0) {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    std::filesystem::remove(secret);
}

TEST(HelperdAuth, ParentPidFromStat) {
    EXPECT_EQ(helperd::parent_pid_from_stat("1234 (nginx) S 1000 1234 1234 0 -1 4194560 ..."),
              1000);
    // The comm may hold spaces and parentheses: the fields follow the last ')'.
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (a) S 1 (b)) R 4242 77 77 0"), 4242);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (nginx: worker) S 99 77"), 99);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 ()) S 5 77"), 5);
    EXPECT_EQ(helperd::parent_pid_from_stat("1 (init) S 0 1 1"), 0);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S 12\n"), std::nullopt)
        << "a field ends at a space";
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S 12 "), 12);
    EXPECT_EQ(helperd::parent_pid_from_stat(""), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 x S 12"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S -1 2"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S 12a 2"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) SS 12 2"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S  12"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 (x) S 99999999999999999999 2"), std::nullopt);
    EXPECT_EQ(helperd::parent_pid_from_stat("77 )x( S 12 2"), std::nullopt);
}

TEST(HelperdAuth, ReadParentPid) {
    std::string why;
    EXPECT_EQ(helperd::read_parent_pid(::getpid(), why), ::getppid()) << why;
    // A process that has exited (and was reaped).
    pid_t pid = ::fork();
    if (pid == 0) {
        ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
    EXPECT_EQ(helperd::read_parent_pid(pid, why), std::nullopt);
    EXPECT_EQ(why, "the process has exited");
    EXPECT_EQ(helperd::read_parent_pid(0, why), std::nullopt);
    EXPECT_EQ(why, "the kernel did not report the peer's pid");
}

TEST(HelperdAuth, InstanceRegistry) {
    helperd::instance_registry r;
    helperd::instance_holder nginx{33, 1000};
    helperd::instance_holder php{33, 2000};
    helperd::instance_holder other_uid{34, 1000};
    EXPECT_TRUE(r.claim("nginx-1", 1, nginx));
    EXPECT_TRUE(r.claim("nginx-1", 2, nginx)) << "a sibling worker";
    helperd::instance_holder holder;
    EXPECT_FALSE(r.claim("nginx-1", 3, php, &holder));
    EXPECT_EQ(holder, nginx);
    EXPECT_FALSE(r.claim("nginx-1", 3, other_uid));
    EXPECT_TRUE(r.claim("php-1", 3, php)) << "its own name";
    r.release(1);
    EXPECT_FALSE(r.claim("nginx-1", 4, php)) << "connection 2 still holds it";
    r.release(2);
    EXPECT_TRUE(r.claim("nginx-1", 4, php)) << "free once its last connection is gone";
    EXPECT_EQ(r.size(), 2u);
    r.release(3);
    r.release(4);
    r.release(99);
    EXPECT_EQ(r.size(), 0u);
}
