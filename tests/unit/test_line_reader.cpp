// proto::line_reader: the one line framing of the module, helperd, ondemandctl and the tests.
#include "ondemand_protocol.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace proto = ondemand::proto;
using status = proto::line_reader::status;

namespace {

struct reader_under_test {
    std::array<char, proto::max_line_length + 1> buf{};
    proto::line_reader reader{buf.data(), buf.size()};

    // Feeds `bytes` (as much as fits) and returns the lines that became complete.
    std::vector<std::string> feed(std::string_view bytes, status* last = nullptr) {
        std::vector<std::string> lines;
        std::size_t n = std::min(bytes.size(), reader.room());
        std::copy_n(bytes.data(), n, reader.space());
        reader.commit(n);
        std::string_view line;
        status st;
        while ((st = reader.next(line)) == status::line) {
            lines.emplace_back(line);
        }
        if (last != nullptr) {
            *last = st;
        }
        return lines;
    }
};

} // namespace

TEST(LineReader, GivesEachCompleteLineWithoutItsNewline) {
    reader_under_test t;
    EXPECT_EQ(t.feed("READY a 1\nSTOPPED b 2\n"),
              (std::vector<std::string>{"READY a 1", "STOPPED b 2"}));
    EXPECT_EQ(t.reader.pending(), 0u);
}

TEST(LineReader, KeepsAPartialLineUntilItsNewlineArrives) {
    reader_under_test t;
    EXPECT_TRUE(t.feed("READY a").empty());
    EXPECT_EQ(t.reader.pending(), 7u);
    EXPECT_EQ(t.feed(" 1\nDOWN"), std::vector<std::string>{"READY a 1"});
    EXPECT_EQ(t.feed(" b\n"), std::vector<std::string>{"DOWN b"});
}

TEST(LineReader, AnEmptyLineIsALine) {
    reader_under_test t;
    EXPECT_EQ(t.feed("\n\n"), (std::vector<std::string>{"", ""}));
}

TEST(LineReader, ALineOfTheLimitFitsTheBufferExactly) {
    reader_under_test t;
    std::string longest(proto::max_line_length, 'x');
    status st{};
    EXPECT_TRUE(t.feed(longest, &st).empty());
    EXPECT_EQ(st, status::need_more);
    EXPECT_EQ(t.reader.room(), 1u) << "room for the newline";
    EXPECT_EQ(t.feed("\n"), std::vector<std::string>{longest});
}

TEST(LineReader, ALineOverTheLimitIsReportedNotCut) {
    reader_under_test t;
    status st{};
    EXPECT_TRUE(t.feed(std::string(proto::max_line_length + 1, 'x'), &st).empty());
    EXPECT_EQ(st, status::too_long);
}

TEST(LineReader, MovesTheRestToTheFrontSoThatALongLineStillFits) {
    reader_under_test t;
    std::string first(proto::max_line_length - 10, 'a');
    EXPECT_EQ(t.feed(first + "\nbb"), std::vector<std::string>{first});
    std::string second(proto::max_line_length - 2, 'b');
    EXPECT_EQ(t.feed(second + "\n"), std::vector<std::string>{"bb" + second});
}

TEST(LineReader, ClearDropsWhatWasBuffered) {
    reader_under_test t;
    t.feed("half a li");
    t.reader.clear();
    EXPECT_EQ(t.reader.pending(), 0u);
    EXPECT_EQ(t.feed("ne\n"), std::vector<std::string>{"ne"});
}
