// startprobe: the app's own readiness time, measured without nginx or helperd.
//
//   startprobe --unit UNIT --socket PATH [--runs N] [--timeout-ms MS]
//
// For each run: StartUnit(UNIT, "replace") on the user bus, then connect() to PATH every 50 us
// until it accepts; then StopUnit and wait for the unit's job to finish. Prints one line per run:
//
//   ready_ms=<StartUnit call -> first accepted connect> job_ms=<StartUnit -> JobRemoved>
//   call_ms=<StartUnit call -> reply> exec_ms=<StartUnit call -> the main process was forked
//   (the unit's ExecMainStartTimestampMonotonic)> activating_ms=<StartUnit call -> the unit
//   left "inactive" (InactiveExitTimestampMonotonic: systemd began the start job)>
//   result=<job result>
//
// ready_ms is what "the app's own readiness" means in docs/BENCHMARKS.md: the best any starter
// could do for a connect-ready app. job_ms is when systemd says the start job is done (for a
// Type=notify app: READY=1). Exit status 0 if every run became ready, 1 otherwise.

#include <systemd/sd-bus.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <time.h>
#include <unistd.h>

#include "unix_accepts.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Job {
    std::string path;
    std::string result;
    bool done = false;
    Clock::time_point at;
};

int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* job = static_cast<Job*>(userdata);
    uint32_t id;
    const char *path, *unit, *result;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
        return 0;
    if (!job->done && job->path == path) {
        job->done = true;
        job->result = result;
        job->at = Clock::now();
    }
    return 0;
}

// A timestamp property of the unit (CLOCK_MONOTONIC, us), or 0.
uint64_t unit_time_us(sd_bus* bus, const std::string& unit, const char* iface, const char* prop) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    if (sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "GetUnit", &err, &reply, "s",
                           unit.c_str()) < 0)
        return 0;
    const char* path;
    if (sd_bus_message_read(reply, "o", &path) < 0)
        return 0;
    std::string p = path;
    sd_bus_message_unref(reply);
    uint64_t us = 0;
    if (sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", p.c_str(), iface, prop, &err,
                                    't', &us) < 0)
        return 0;
    return us;
}

uint64_t mono_us(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

void die(const char* what, int r) {
    std::fprintf(stderr, "startprobe: %s: %s\n", what, std::strerror(-r));
    std::exit(2);
}

// Calls Start/StopUnit; returns the job's object path.
std::string call_unit(sd_bus* bus, const char* method, const std::string& unit) {
    sd_bus_error err = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", method, &err, &reply, "ss",
                               unit.c_str(), "replace");
    if (r < 0) {
        std::fprintf(stderr, "startprobe: %s %s: %s\n", method, unit.c_str(),
                     err.message ? err.message : std::strerror(-r));
        std::exit(2);
    }
    const char* path;
    if ((r = sd_bus_message_read(reply, "o", &path)) < 0)
        die("reading job path", r);
    std::string p = path;
    sd_bus_message_unref(reply);
    return p;
}

// Dispatches bus messages until the job is done or the deadline passes.
bool wait_job(sd_bus* bus, Job& job, Clock::time_point deadline) {
    while (!job.done) {
        int r = sd_bus_process(bus, nullptr);
        if (r < 0)
            die("sd_bus_process", r);
        if (r > 0)
            continue;
        if (Clock::now() >= deadline)
            return false;
        sd_bus_wait(bus, 10000);
    }
    return true;
}

} // namespace

int main(int argc, char** argv) {
    std::string unit, socket_path;
    int runs = 1;
    long timeout_ms = 30000;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "startprobe: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--unit")
            unit = next();
        else if (a == "--socket")
            socket_path = next();
        else if (a == "--runs")
            runs = std::atoi(next().c_str());
        else if (a == "--timeout-ms")
            timeout_ms = std::atol(next().c_str());
        else {
            std::fprintf(stderr, "usage: startprobe --unit UNIT --socket PATH [--runs N]\n");
            return 2;
        }
    }
    if (unit.empty() || socket_path.empty() || runs < 1) {
        std::fprintf(stderr, "usage: startprobe --unit UNIT --socket PATH [--runs N]\n");
        return 2;
    }

    sd_bus* bus = nullptr;
    int r = sd_bus_open_user(&bus);
    if (r < 0)
        die("sd_bus_open_user", r);
    Job job;
    r = sd_bus_match_signal(bus, nullptr, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                            "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, &job);
    if (r < 0)
        die("match JobRemoved", r);
    {
        sd_bus_error err = SD_BUS_ERROR_NULL;
        r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                               "org.freedesktop.systemd1.Manager", "Subscribe", &err, nullptr, "");
        if (r < 0)
            die("Subscribe", r);
    }

    int failures = 0;
    const timespec tick{0, 50 * 1000};
    for (int run = 0; run < runs; ++run) {
        job = Job{};
        auto t0 = Clock::now();
        job.path = call_unit(bus, "StartUnit", unit);
        double call_ms = ms_since(t0);
        auto deadline = t0 + std::chrono::milliseconds(timeout_ms);
        double ready_ms = -1;
        while (Clock::now() < deadline) {
            if (unix_accepts(socket_path)) {
                ready_ms = ms_since(t0);
                break;
            }
            nanosleep(&tick, nullptr);
        }
        bool job_done = wait_job(bus, job, deadline);
        double job_ms =
            job_done ? std::chrono::duration<double, std::milli>(job.at - t0).count() : -1;
        auto rel = [&](uint64_t us) {
            return us ? (double(us) - double(mono_us(t0))) / 1000.0 : -1;
        };
        double exec_ms = rel(unit_time_us(bus, unit, "org.freedesktop.systemd1.Service",
                                          "ExecMainStartTimestampMonotonic"));
        double activating_ms = rel(unit_time_us(bus, unit, "org.freedesktop.systemd1.Unit",
                                                "InactiveExitTimestampMonotonic"));
        std::printf("ready_ms=%.3f job_ms=%.3f call_ms=%.3f activating_ms=%.3f exec_ms=%.3f "
                    "result=%s\n",
                    ready_ms, job_ms, call_ms, activating_ms, exec_ms,
                    job_done ? job.result.c_str() : "timeout");
        std::fflush(stdout);
        if (ready_ms < 0)
            ++failures;

        job = Job{};
        job.path = call_unit(bus, "StopUnit", unit);
        wait_job(bus, job, Clock::now() + std::chrono::seconds(15));
    }
    sd_bus_unref(bus);
    return failures ? 1 : 0;
}
