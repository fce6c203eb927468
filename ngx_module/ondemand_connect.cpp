#include "ondemand_connect.h"

#include <algorithm>
#include <cerrno>

namespace ondemand {

connect_verdict classify_connect(int err) {
    switch (err) {
    case 0:
        return connect_verdict::connected;
    case EAGAIN:
        return connect_verdict::retry;
    case ECONNREFUSED:
    case ENOENT:
        return connect_verdict::gone;
    default:
        return connect_verdict::failed;
    }
}

std::uint64_t next_connect_backoff(std::uint64_t backoff_ms) {
    if (backoff_ms == 0) {
        return 1;
    }
    return std::min(backoff_ms * 2, max_connect_backoff_ms);
}

} // namespace ondemand
