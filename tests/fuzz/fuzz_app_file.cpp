// libFuzzer target for app files (ctl/app_file.cpp) and the nginx include made from them
// (ctl/gen_nginx.cpp). The input's first line is the file's name (its stem is the app name), the
// rest its text. Whatever parse_app_file() accepts must give an include that nginx reads as
// intended: the include is split into tokens the way nginx's ngx_conf_read_token() does
// (whitespace, ';', '{', '}', quotes and '#' at a token's start, escapes in quotes), and the
// statements must be exactly
//   upstream NAME { server unix:DIR/NAME/app.sock; ondemand unit=UNIT [key=value...]; }
//   map $host $app { hostnames; default ""; HOST NAME; ... }
// with the app's own values, token for token: a value that could end a statement, open a block
// or start a comment (an injection into nginx's configuration) aborts. Running `nginx -t` is
// too slow here: t/46-gen-nginx-corpus.t runs it on the includes made from the seed corpus.
#include "app_file.h"
#include "gen_nginx.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace ondemand::ctl;

namespace {

[[noreturn]] void fail(const char* what, const std::string& conf) {
    std::fprintf(stderr, "fuzz_app_file: %s\n--- include:\n%s---\n", what, conf.c_str());
    std::abort();
}

// One statement: its words, and whether a block follows ('{') or it ends with ';' or '}' closes.
struct item {
    enum { statement, block, close } type;
    std::vector<std::string> words;
};

// nginx's tokenizer, reduced to what matters for structure. False on a syntax error.
bool tokenize(std::string_view s, std::vector<item>& out) {
    std::vector<std::string> words;
    std::size_t i = 0;
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (i < s.size()) {
        char c = s[i];
        if (space(c)) {
            ++i;
        } else if (c == '#') {
            while (i < s.size() && s[i] != '\n') {
                ++i;
            }
        } else if (c == ';' || c == '{') {
            if (words.empty()) {
                return false;
            }
            out.push_back({c == ';' ? item::statement : item::block, std::move(words)});
            words.clear();
            ++i;
        } else if (c == '}') {
            if (!words.empty()) {
                return false;
            }
            out.push_back({item::close, {}});
            ++i;
        } else if (c == '"' || c == '\'') {
            std::string w;
            ++i;
            while (i < s.size() && s[i] != c) {
                // nginx unescapes \" \' \\ and \t \r \n in a quoted string, keeps others
                if (s[i] == '\\' && i + 1 < s.size()) {
                    char e = s[i + 1];
                    if (e == '"' || e == '\'' || e == '\\' || e == 't' || e == 'r' || e == 'n') {
                        w += e == 't' ? '\t' : e == 'r' ? '\r' : e == 'n' ? '\n' : e;
                        i += 2;
                        continue;
                    }
                }
                w += s[i++];
            }
            if (i >= s.size()) {
                return false;
            }
            ++i;
            if (i < s.size() && !space(s[i]) && s[i] != ';' && s[i] != '{') {
                return false; // nginx: unexpected character after a quoted string
            }
            words.push_back(std::move(w));
        } else {
            std::string w;
            while (i < s.size() && !space(s[i]) && s[i] != ';' && s[i] != '{') {
                if (s[i] == '\\') {
                    return false; // an escape outside quotes: gen-nginx quotes such words
                }
                if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
                    return false; // ${ starts a variable name in braces: never ours
                } else if (s[i] == '"' || s[i] == '\'' || s[i] == '}') {
                    return false; // not what gen-nginx may write inside a word
                }
                w += s[i++];
            }
            words.push_back(std::move(w));
        }
    }
    return words.empty();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::size_t nl = in.find('\n');
    if (nl == std::string_view::npos || nl > 100) {
        return 0;
    }
    std::string path = "/etc/ondemand/apps/" + std::string(in.substr(0, nl));
    parse_result r = parse_app_file(path, in.substr(nl + 1));
    if (!r.app) {
        if (r.errors.empty()) {
            fail("rejected without a diagnostic", path + "\n");
        }
        return 0;
    }
    const app_config& a = *r.app;
    gen_options opts;
    opts.source = "/etc/ondemand/apps";
    std::string conf = gen_nginx({a}, opts);

    std::vector<item> items;
    if (!tokenize(conf, items)) {
        fail("nginx would not tokenize the include", conf);
    }
    std::vector<std::string> ondemand = {"ondemand", "unit=" + a.unit()};
    if (a.ready != "connect") {
        ondemand.push_back("ready=" + a.ready);
    }
    if (!a.start_timeout.empty()) {
        ondemand.push_back("start_timeout=" + a.start_timeout);
    }
    if (!a.idle_timeout.empty()) {
        ondemand.push_back("idle_timeout=" + a.idle_timeout);
    }
    if (!a.queue.empty()) {
        ondemand.push_back("queue=" + a.queue);
    }
    if (!a.failed_status.empty()) {
        ondemand.push_back("failed_status=" + a.failed_status);
    }
    std::vector<item> want = {
        {item::block, {"upstream", a.name}},
        {item::statement, {"server", "unix:" + opts.socket_dir + "/" + a.name + "/app.sock"}},
        {item::statement, ondemand},
        {item::close, {}},
        {item::block, {"map", "$host", "$app"}},
        {item::statement, {"hostnames"}},
        {item::statement, {"default", ""}},
    };
    for (const std::string& h : a.hosts) {
        want.push_back({item::statement, {h, a.name}});
    }
    want.push_back({item::close, {}});
    if (items.size() != want.size()) {
        fail("the include has other statements than the app's", conf);
    }
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (items[i].type != want[i].type || items[i].words != want[i].words) {
            fail("a statement of the include differs from the app's values", conf);
        }
    }
    // nginx's map: a host starting with '~' would be a regex, "hostnames"/"default"/"include"
    // and "volatile" are keywords.
    for (const std::string& h : a.hosts) {
        if (h.empty() || h[0] == '~' || h == "hostnames" || h == "default" || h == "include" ||
            h == "volatile") {
            fail("a host is a map keyword or a regex", conf);
        }
    }
    return 0;
}
