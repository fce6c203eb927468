// memory: the memory of running apps' units (see memory.h).
#include "memory.h"

#include "log.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace ondemand::helperd {

namespace {

constexpr std::uint64_t kib = 1024;

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// The value of a "Name:   123 kB" line, in bytes.
std::optional<std::uint64_t> kb_field(std::string_view text, std::string_view name) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        std::string_view line =
            text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = end == std::string_view::npos ? text.size() : end + 1;
        if (line.size() <= name.size() || line.substr(0, name.size()) != name ||
            line[name.size()] != ':') {
            continue;
        }
        std::string_view rest = line.substr(name.size() + 1);
        std::size_t digits = rest.find_first_not_of(' ');
        if (digits == std::string_view::npos) {
            return std::nullopt;
        }
        rest.remove_prefix(digits);
        std::uint64_t value = 0;
        auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
        if (ec != std::errc{} || std::string_view(p, rest.data() + rest.size() - p) != " kB") {
            return std::nullopt;
        }
        return value * kib;
    }
    return std::nullopt;
}

// Splits on single spaces.
std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (pos <= line.size()) {
        std::size_t sp = line.find(' ', pos);
        out.push_back(
            line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos));
        if (sp == std::string_view::npos) {
            break;
        }
        pos = sp + 1;
    }
    return out;
}

std::optional<std::uint64_t> process_memory(std::string_view pid) {
    std::string base = "/proc/" + std::string(pid);
    if (auto smaps = read_file(base + "/smaps_rollup")) {
        if (auto pss = parse_smaps_pss(*smaps)) {
            return pss;
        }
    }
    if (auto status = read_file(base + "/status")) {
        return parse_status_rss(*status);
    }
    return std::nullopt;
}

} // namespace

std::optional<std::uint64_t> parse_smaps_pss(std::string_view smaps_rollup) {
    return kb_field(smaps_rollup, "Pss");
}

std::optional<std::uint64_t> parse_status_rss(std::string_view status) {
    return kb_field(status, "VmRSS");
}

std::optional<std::string> parse_cgroup2_path(std::string_view proc_cgroup) {
    std::size_t pos = 0;
    while (pos < proc_cgroup.size()) {
        std::size_t end = proc_cgroup.find('\n', pos);
        std::string_view line = proc_cgroup.substr(
            pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = end == std::string_view::npos ? proc_cgroup.size() : end + 1;
        if (line.substr(0, 3) == "0::" && line.size() > 3 && line[3] == '/') {
            return std::string(line.substr(3));
        }
    }
    return std::nullopt;
}

std::optional<cgroup2_mount> parse_cgroup2_mount(std::string_view mountinfo) {
    // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER"
    std::size_t pos = 0;
    while (pos < mountinfo.size()) {
        std::size_t end = mountinfo.find('\n', pos);
        std::string_view line = mountinfo.substr(
            pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = end == std::string_view::npos ? mountinfo.size() : end + 1;
        std::vector<std::string_view> w = words(line);
        for (std::size_t i = 6; i + 1 < w.size(); i++) {
            if (w[i] == "-" && w[i + 1] == "cgroup2" && w.size() > 4) {
                return cgroup2_mount{std::string(w[3]), std::string(w[4])};
            }
        }
    }
    return std::nullopt;
}

std::optional<std::string> unit_cgroup_dir(const cgroup2_mount& mount, std::string_view pid_cgroup,
                                           std::string_view control_group) {
    std::string_view unit = pid_cgroup;
    if (!control_group.empty() && control_group != "/") {
        std::size_t at = std::string_view::npos;
        for (std::size_t p = pid_cgroup.find(control_group); p != std::string_view::npos;
             p = pid_cgroup.find(control_group, p + 1)) {
            std::size_t after = p + control_group.size();
            if (after == pid_cgroup.size() || pid_cgroup[after] == '/') {
                at = p;
            }
        }
        if (at == std::string_view::npos) {
            return std::nullopt; // the main process is not in the unit's cgroup
        }
        unit = pid_cgroup.substr(0, at + control_group.size());
    }
    std::string_view root = mount.root;
    if (root == "/") {
        root = {};
    }
    if (unit.substr(0, root.size()) != root ||
        (unit.size() > root.size() && unit[root.size()] != '/')) {
        return std::nullopt; // outside what this mount shows
    }
    return mount.mountpoint + std::string(unit.substr(root.size()));
}

std::optional<std::uint64_t> cgroup_memory(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        return std::nullopt;
    }
    std::uint64_t sum = 0;
    auto add_procs = [&sum](const fs::path& cgroup) {
        auto procs = read_file((cgroup / "cgroup.procs").string());
        if (!procs) {
            return;
        }
        std::istringstream in(*procs);
        std::string pid;
        while (in >> pid) {
            sum += process_memory(pid).value_or(0); // a process may exit meanwhile
        }
    };
    add_procs(dir);
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_directory(ec)) {
            add_procs(it->path());
        }
    }
    return sum;
}

std::optional<std::uint64_t>
unit_memory(std::uint64_t memory_current,
            const std::function<std::optional<std::uint64_t>()>& fallback) {
    if (memory_current != memory_not_set) {
        return memory_current;
    }
    return fallback();
}

memory_sampler::memory_sampler(boost::asio::io_context& io, unit_manager& units, list_fn list,
                               report_fn report, std::chrono::milliseconds interval)
    : units_(units), list_(std::move(list)), report_(std::move(report)), interval_(interval),
      timer_(io) {}

memory_sampler::~memory_sampler() {
    guard_.revoke();
}

void memory_sampler::enable() {
    if (!enabled_) {
        enabled_ = true;
        arm();
    }
}

std::optional<std::uint64_t> memory_sampler::measure(const unit_state& state) {
    return unit_memory(state.memory_current, [&state]() -> std::optional<std::uint64_t> {
        if (state.main_pid == 0) {
            return std::nullopt;
        }
        auto cgroup = read_file("/proc/" + std::to_string(state.main_pid) + "/cgroup");
        auto mountinfo = read_file("/proc/self/mountinfo");
        if (!cgroup || !mountinfo) {
            return std::nullopt;
        }
        auto path = parse_cgroup2_path(*cgroup);
        auto mount = parse_cgroup2_mount(*mountinfo);
        if (!path || !mount) {
            return std::nullopt;
        }
        auto dir = unit_cgroup_dir(*mount, *path, state.control_group);
        return dir ? cgroup_memory(*dir) : std::nullopt;
    });
}

void memory_sampler::arm() {
    timer_.expires_after(interval_);
    timer_.async_wait(guard_.wrap([this](const boost::system::error_code& ec) {
        if (!ec) {
            tick();
            arm();
        }
    }));
}

void memory_sampler::tick() {
    for (auto& [app, unit] : list_()) {
        units_.read_unit_state(
            unit, guard_.wrap([this, app = app](const unit_state& state, const std::string& error) {
                if (!error.empty() || state.active_state != "active") {
                    return;
                }
                if (auto bytes = measure(state)) {
                    report_(app, *bytes);
                }
            }));
    }
}

} // namespace ondemand::helperd
