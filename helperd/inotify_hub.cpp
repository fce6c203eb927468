// inotify_hub: the one inotify descriptor and its shared, counted watches (see inotify_hub.h).
// Must not include readiness.h or anything above it.
#include "inotify_hub.h"

#include "log.h"

#include <fmt/format.h>

#include <sys/inotify.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

namespace ondemand::helperd {

namespace asio = boost::asio;

namespace {

constexpr std::uint32_t watch_mask =
    IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

} // namespace

inotify_hub::subscription::subscription(subscription&& other) noexcept
    : hub_(std::move(other.hub_)), token_(other.token_) {
    other.token_ = 0;
}

inotify_hub::subscription& inotify_hub::subscription::operator=(subscription&& other) noexcept {
    if (this != &other) {
        reset();
        hub_ = std::move(other.hub_);
        token_ = other.token_;
        other.token_ = 0;
    }
    return *this;
}

inotify_hub::subscription::~subscription() {
    reset();
}

bool inotify_hub::subscription::active() const {
    auto hub = hub_.lock();
    return token_ != 0 && hub && hub->subscribed(token_);
}

void inotify_hub::subscription::reset() {
    if (token_ == 0) {
        return;
    }
    if (auto hub = hub_.lock()) {
        hub->unsubscribe(token_);
    }
    token_ = 0;
    hub_.reset();
}

std::shared_ptr<inotify_hub> inotify_hub::create(asio::io_context& io) {
    return std::make_shared<inotify_hub>(private_tag{}, io);
}

inotify_hub::inotify_hub(private_tag, asio::io_context& io) : fd_(io) {}

bool inotify_hub::open(std::string& error) {
    if (fd_.is_open()) {
        return true;
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        error = fmt::format("inotify_init1: {}", std::strerror(errno));
        return false;
    }
    fd_.assign(fd);
    return true;
}

inotify_hub::subscription inotify_hub::watch(const std::string& dir, handler on_event,
                                             std::string& error) {
    if (!open(error)) {
        return {};
    }
    int wd = inotify_add_watch(fd_.native_handle(), dir.c_str(), watch_mask);
    if (wd < 0) {
        error = fmt::format("inotify_add_watch {}: {}", dir, std::strerror(errno));
        return {};
    }
    std::uint64_t token = next_token_++;
    kernel_watch& w = watches_[wd];
    w.dir = dir;
    w.subscribers.emplace(token, std::move(on_event));
    owners_.emplace(token, wd);
    if (!reading_) {
        read_events();
    }
    return subscription(weak_from_this(), token);
}

void inotify_hub::unsubscribe(std::uint64_t token) {
    auto owner = owners_.find(token);
    if (owner == owners_.end()) {
        return;
    }
    int wd = owner->second;
    owners_.erase(owner);
    auto it = watches_.find(wd);
    if (it == watches_.end()) {
        return;
    }
    it->second.subscribers.erase(token);
    if (it->second.subscribers.empty()) {
        // Does not wait for the kernel's grace period: the mark is freed by a kernel worker.
        inotify_rm_watch(fd_.native_handle(), wd);
        watches_.erase(it);
    }
}

void inotify_hub::read_events() {
    reading_ = true;
    fd_.async_read_some(asio::buffer(events_),
                        [weak = weak_from_this()](boost::system::error_code ec, std::size_t n) {
                            auto self = weak.lock();
                            if (!self) {
                                return;
                            }
                            self->reading_ = false;
                            if (ec) {
                                if (ec != asio::error::operation_aborted) {
                                    log(log_level::error, "inotify read: {}", ec.message());
                                }
                                return;
                            }
                            self->dispatch(n);
                            self->read_events();
                        });
}

void inotify_hub::dispatch(std::size_t bytes) {
    // Which watches saw something (each subscriber is told once per read), and which are gone.
    std::set<int> touched;
    std::set<int> gone;
    bool overflow = false;
    std::size_t offset = 0;
    while (offset + sizeof(inotify_event) <= bytes) {
        inotify_event ev{};
        std::memcpy(&ev, events_.data() + offset, sizeof(ev));
        offset += sizeof(inotify_event) + ev.len;
        if ((ev.mask & IN_Q_OVERFLOW) != 0) {
            overflow = true;
            continue;
        }
        if ((ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
            gone.insert(ev.wd);
        }
        touched.insert(ev.wd);
    }
    if (overflow) {
        for (const auto& [wd, w] : watches_) {
            (void)w;
            touched.insert(wd);
        }
    }
    // Collect the handlers first: a handler may subscribe and unsubscribe.
    std::vector<std::pair<std::uint64_t, handler>> calls;
    for (int wd : touched) {
        auto it = watches_.find(wd);
        if (it == watches_.end()) {
            continue; // an old watch's IN_IGNORED, after its last subscriber left
        }
        for (const auto& [token, h] : it->second.subscribers) {
            calls.emplace_back(token, h);
        }
        if (gone.count(wd) != 0) {
            // The directory went away (or moved): the kernel drops the watch; the subscribers
            // see an inactive subscription and watch again where they need to.
            if ((fd_.is_open())) {
                inotify_rm_watch(fd_.native_handle(), wd);
            }
            for (const auto& [token, h] : it->second.subscribers) {
                (void)h;
                owners_.erase(token);
            }
            watches_.erase(it);
        }
    }
    for (auto& [token, h] : calls) {
        (void)token;
        h();
    }
}

} // namespace ondemand::helperd
