// helperd's journal fields (docs/helperd.md, "Logs"): what journalctl can select a line by.
#include "log.h"
#include "message_ids.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace {

using namespace ondemand::helperd;

bool has(const std::vector<std::string>& fields, const std::string& f) {
    return std::find(fields.begin(), fields.end(), f) != fields.end();
}

TEST(JournalFields, APlainLineHasMessagePriorityAndIdentifierOnly) {
    auto f = journal_fields(log_level::warning, "client 3: refused line", {});
    EXPECT_EQ(f, (std::vector<std::string>{"MESSAGE=client 3: refused line", "PRIORITY=4",
                                           "SYSLOG_IDENTIFIER=ondemand-helperd"}));
}

TEST(JournalFields, ALineAboutAnAppCarriesFieldsToSelectItByAppAndUnit) {
    auto f = journal_fields(log_level::info, "StartUnit u for app blog",
                            {"blog", "ondemand-podman@blog.service", message_id::start});
    EXPECT_TRUE(has(f, "ONDEMAND_APP=blog"));
    EXPECT_TRUE(has(f, "ONDEMAND_UNIT=ondemand-podman@blog.service"));
    // journalctl -u's match for "messages from authorized daemons" (with _UID=0)
    EXPECT_TRUE(has(f, "OBJECT_SYSTEMD_UNIT=ondemand-podman@blog.service"));
    EXPECT_TRUE(has(f, "MESSAGE_ID=2b0283f0d9a744e68df71a2931913637"));
    EXPECT_TRUE(has(f, "PRIORITY=6"));
    EXPECT_TRUE(has(f, "APP=blog")) << "the older field stays for existing queries";
}

TEST(JournalFields, NoEmptyFieldsForAMissingUnitOrId) {
    auto f = journal_fields(log_level::error, "x", {"blog", {}});
    for (const std::string& field : f) {
        EXPECT_NE(field.back(), '=') << field;
        EXPECT_EQ(field.rfind("ONDEMAND_UNIT=", 0), std::string::npos);
        EXPECT_EQ(field.rfind("MESSAGE_ID=", 0), std::string::npos);
    }
    EXPECT_TRUE(has(f, "PRIORITY=3"));
}

TEST(JournalFields, MessageIdsAre128BitLowercaseHexAndDistinct) {
    const std::string_view ids[] = {
        message_id::start,   message_id::ready,  message_id::start_failed, message_id::stop,
        message_id::stopped, message_id::freeze, message_id::down};
    for (std::string_view id : ids) {
        ASSERT_EQ(id.size(), 32u) << id;
        for (char c : id) {
            EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'))
                << id;
        }
        EXPECT_EQ(std::count(std::begin(ids), std::end(ids), id), 1) << id;
    }
}

} // namespace
