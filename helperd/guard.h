// callback_guard: wraps the callbacks an object hands to asynchronous operations (timers,
// sockets, D-Bus calls) so that they do nothing once the object is gone or has revoked them.
// The one replacement for "capture alive_, check *alive first" in every callback.
// Must not include any other helperd header: everything may include it.
#ifndef ONDEMAND_HELPERD_GUARD_H
#define ONDEMAND_HELPERD_GUARD_H

#include <memory>
#include <utility>

namespace ondemand::helperd {

class callback_guard {
  public:
    callback_guard() = default;
    callback_guard(const callback_guard&) = delete;
    callback_guard& operator=(const callback_guard&) = delete;
    ~callback_guard() { revoke(); }

    // From now on, every callback made by wrap() does nothing. An owner calls this first in
    // its destructor, so that callbacks run synchronously while it tears down are ignored too.
    void revoke() { *alive_ = false; }

    // `fn`, called with whatever arguments the operation passes, unless revoked by then. The
    // wrapper is copyable when `fn` is (std::function needs that).
    template <class F> auto wrap(F fn) const {
        return [alive = alive_, fn = std::move(fn)](auto&&... args) {
            if (*alive) {
                fn(std::forward<decltype(args)>(args)...);
            }
        };
    }

  private:
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace ondemand::helperd

#endif
