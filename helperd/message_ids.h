// The journal MESSAGE_IDs of helperd's lines about an app's lifecycle (docs/helperd.md, "Logs"):
// fixed 128-bit ids (made once with `systemd-id128 new`; never change them), so that
// `journalctl MESSAGE_ID=...` finds every start, ready, failure, stop... of every app.
// Must not include any other helperd header.
#ifndef ONDEMAND_HELPERD_MESSAGE_IDS_H
#define ONDEMAND_HELPERD_MESSAGE_IDS_H

#include <string_view>

namespace ondemand::helperd::message_id {

// StartUnit (or ThawUnit) called for an app
inline constexpr std::string_view start = "2b0283f0d9a744e68df71a2931913637";
// the app is ready
inline constexpr std::string_view ready = "e4fbd20ae2ea48c3959df5bb821b5230";
// a start failed (the line carries the failure code)
inline constexpr std::string_view start_failed = "5277ee04f0e9433fb247f8c5931d6845";
// StopUnit called for an app
inline constexpr std::string_view stop = "33c5ca0f4da143d5b2a652d0ea0c322f";
// the stop is done
inline constexpr std::string_view stopped = "c38d2b0bb3174f15997d2ac44f197b2e";
// FreezeUnit called for an app
inline constexpr std::string_view freeze = "9aa18fea549049759e11deb4cb6b1045";
// a ready or frozen app's unit went down behind helperd's back
inline constexpr std::string_view down = "1acabbf6093a41338ad2304ac0903b3b";

} // namespace ondemand::helperd::message_id

#endif
