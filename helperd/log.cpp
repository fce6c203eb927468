// log: formats and writes helperd's log lines, to stderr or the journal (see log.h).
// Must not include any other helperd header.
#include "log.h"

#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <sys/uio.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace ondemand::helperd {

namespace {

log_level current_level = log_level::info;
bool to_journal = false;

int syslog_priority(log_level level) {
    switch (level) {
    case log_level::debug:
        return LOG_DEBUG;
    case log_level::info:
        return LOG_INFO;
    case log_level::warning:
        return LOG_WARNING;
    case log_level::error:
        return LOG_ERR;
    }
    return LOG_INFO;
}

// JOURNAL_STREAM is "device:inode" of the stream systemd connected stderr to; it only counts
// when stderr still is that stream (not redirected by whoever started us).
bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) {
        return false;
    }
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) {
        return false;
    }
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) {
        return false;
    }
    return st.st_dev == dev && st.st_ino == ino;
}

} // namespace

std::string_view log_level_name(log_level level) {
    switch (level) {
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warning:
        return "warning";
    case log_level::error:
        return "error";
    }
    return "info";
}

std::optional<log_level> parse_log_level(std::string_view name) {
    for (log_level l : {log_level::debug, log_level::info, log_level::warning, log_level::error}) {
        if (log_level_name(l) == name) {
            return l;
        }
    }
    return std::nullopt;
}

void set_log_level(log_level level) {
    current_level = level;
}

bool log_enabled(log_level level) {
    return level >= current_level;
}

void init_log_target() {
    to_journal = stderr_is_journal();
}

std::vector<std::string> journal_fields(log_level level, std::string_view text, log_context ctx) {
    std::vector<std::string> fields;
    fields.reserve(9);
    fields.push_back(fmt::format("MESSAGE={}", text));
    fields.push_back(fmt::format("PRIORITY={}", syslog_priority(level)));
    fields.emplace_back("SYSLOG_IDENTIFIER=ondemand-helperd");
    if (!ctx.message_id.empty()) {
        fields.push_back(fmt::format("MESSAGE_ID={}", ctx.message_id));
    }
    if (!ctx.app.empty()) {
        fields.push_back(fmt::format("ONDEMAND_APP={}", ctx.app));
        fields.push_back(
            fmt::format("APP={}", ctx.app)); // before ONDEMAND_APP; kept for old queries
    }
    if (!ctx.unit.empty()) {
        fields.push_back(fmt::format("ONDEMAND_UNIT={}", ctx.unit));
        // `journalctl -u UNIT` matches it when helperd runs as root (_UID=0).
        fields.push_back(fmt::format("OBJECT_SYSTEMD_UNIT={}", ctx.unit));
        fields.push_back(fmt::format("UNIT={}", ctx.unit)); // before ONDEMAND_UNIT; kept likewise
    }
    return fields;
}

void log_line(log_level level, std::string_view text, log_context ctx) {
    if (!log_enabled(level)) {
        return;
    }
    if (to_journal) {
        std::vector<std::string> fields = journal_fields(level, text, ctx);
        std::vector<iovec> iov;
        iov.reserve(fields.size());
        for (std::string& f : fields) {
            iov.push_back(iovec{f.data(), f.size()});
        }
        sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
        return;
    }
    std::string line = fmt::format("{}: {}\n", log_level_name(level), text);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

bool log_limiter::allow(clock::time_point now, std::uint64_t& held_back) {
    if (in_window_ == 0 || now - window_start_ >= window_) {
        window_start_ = now;
        in_window_ = 0;
    }
    if (in_window_ >= burst_) {
        ++held_back_;
        return false;
    }
    ++in_window_;
    held_back = held_back_;
    held_back_ = 0;
    return true;
}

std::string held_back_note(std::uint64_t held_back) {
    return held_back == 0 ? std::string()
                          : fmt::format(" ({} similar lines not logged)", held_back);
}

} // namespace ondemand::helperd
