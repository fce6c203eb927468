// The module's own connect() to an app's unix socket, decided free of nginx so that
// GoogleTest checks it: what an errno from connect() means for the request and for the app,
// and the backoff between retries while the app's listen backlog is full.
//
// Must not call: nginx, the network, or anything that changes an app record.
#ifndef ONDEMAND_CONNECT_H
#define ONDEMAND_CONNECT_H

#include <cstdint>

namespace ondemand {

// What a connect() to an app's unix socket came to.
enum class connect_verdict {
    connected, // 0: go on
    retry,     // EAGAIN: the listen backlog is full; the app is fine, try again shortly
    gone,      // ECONNREFUSED, ENOENT: nothing listens; the app is not running (make it cold)
    failed,    // anything else: this request fails, the app's state is left alone
};

connect_verdict classify_connect(int err);

// The longest pause between two connect() retries, in ms. The request's
// proxy_connect_timeout (a timer of its own) bounds the whole wait.
inline constexpr std::uint64_t max_connect_backoff_ms = 32;

// The pause before the next retry: 1 ms first (`backoff_ms` 0), then doubling, capped.
std::uint64_t next_connect_backoff(std::uint64_t backoff_ms);

} // namespace ondemand

#endif
