// One inotify instance for all of helperd, shared by every readiness probe.
//
// Why shared: closing an inotify descriptor waits for an SRCU grace period in the kernel
// (fsnotify_destroy_group), which takes milliseconds to tens of milliseconds. A descriptor per
// probe, closed when the app became ready, put that wait on every cold start's path.
// inotify_rm_watch does not wait (the mark is reaped by a kernel worker later), so probes only
// add and remove watches here, and the descriptor is closed once, when helperd exits.
//
// Two probes watching the same directory share the kernel's watch (inotify_add_watch returns
// the same descriptor for the same inode); the hub counts its subscribers and removes the
// watch with the last one.
//
// It knows no app and no probe: it may include log.h only, never readiness.h or above.
#ifndef ONDEMAND_HELPERD_INOTIFY_HUB_H
#define ONDEMAND_HELPERD_INOTIFY_HUB_H

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace ondemand::helperd {

class inotify_hub : public std::enable_shared_from_this<inotify_hub> {
  public:
    // Called from the io_context on any event in the watched directory, and when the watch
    // is gone (the directory was removed or moved; the subscription is then no longer active).
    using handler = std::function<void()>;

    // Releases its watch when destroyed.
    class subscription {
      public:
        subscription() = default;
        subscription(const subscription&) = delete;
        subscription& operator=(const subscription&) = delete;
        subscription(subscription&& other) noexcept;
        subscription& operator=(subscription&& other) noexcept;
        ~subscription();

        // False once the watch is gone (or when there never was one).
        bool active() const;
        void reset();

      private:
        friend class inotify_hub;
        subscription(std::weak_ptr<inotify_hub> hub, std::uint64_t token)
            : hub_(std::move(hub)), token_(token) {}
        std::weak_ptr<inotify_hub> hub_;
        std::uint64_t token_ = 0;
    };

    static std::shared_ptr<inotify_hub> create(boost::asio::io_context& io);
    inotify_hub(const inotify_hub&) = delete;
    inotify_hub& operator=(const inotify_hub&) = delete;
    ~inotify_hub() = default;

    // Watches `dir` (IN_CREATE, IN_MOVED_TO, IN_ATTRIB, and its own removal). On failure the
    // subscription is inactive and `error` says why.
    subscription watch(const std::string& dir, handler on_event, std::string& error);

    // Kernel watches and subscribers, for tests.
    std::size_t watch_count() const { return watches_.size(); }
    std::size_t subscriber_count() const { return owners_.size(); }

    struct private_tag {};
    inotify_hub(private_tag, boost::asio::io_context& io);

  private:
    struct kernel_watch {
        std::string dir;
        std::map<std::uint64_t, handler> subscribers;
    };

    bool open(std::string& error);
    void read_events();
    void dispatch(std::size_t bytes);
    void unsubscribe(std::uint64_t token);
    bool subscribed(std::uint64_t token) const { return owners_.count(token) != 0; }

    boost::asio::posix::stream_descriptor fd_;
    std::map<int, kernel_watch> watches_; // by watch descriptor
    std::map<std::uint64_t, int> owners_; // subscription token -> watch descriptor
    std::uint64_t next_token_ = 1;
    alignas(8) std::array<char, 8192> events_{};
    bool reading_ = false;
};

} // namespace ondemand::helperd

#endif
