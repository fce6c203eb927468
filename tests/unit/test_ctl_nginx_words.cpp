// gen-nginx writes words nginx reads back as they are (found by tests/fuzz/fuzz_app_file.cpp):
// a READY path holding ; { } # or quotes is quoted (the parser refuses them now, gen_nginx still
// quotes what it is given), and HOSTS refuses the map's keywords.
#include "app_file.h"
#include "gen_nginx.h"

#include <gtest/gtest.h>

#include <string>

using namespace ondemand::ctl;

TEST(CtlNginxWords, ReadyPathWithSpecialsIsQuoted) {
    EXPECT_FALSE(parse_app_file("/e/z.conf", "EXEC=x\nREADY='http:/a;b{c}#d\"e\\f'\n").app);
    parse_result r = parse_app_file("/e/z.conf", "EXEC=x\n");
    ASSERT_TRUE(r.app);
    r.app->ready = "http:/a;b{c}#d\"e\\f";
    std::string conf = gen_nginx({*r.app}, gen_options{});
    EXPECT_NE(conf.find(R"(ondemand unit=ondemand-exec@z.service "ready=http:/a;b{c}#d\"e\\f";)"),
              std::string::npos)
        << conf;
}

TEST(CtlNginxWords, PlainWordsStayUnquoted) {
    parse_result r = parse_app_file("/e/z.conf", "EXEC=x\nREADY=http:/healthz?x=1&y=2\n");
    ASSERT_TRUE(r.app);
    std::string conf = gen_nginx({*r.app}, gen_options{});
    EXPECT_NE(conf.find("ondemand unit=ondemand-exec@z.service ready=http:/healthz?x=1&y=2;"),
              std::string::npos)
        << conf;
    EXPECT_NE(conf.find("    server unix:/run/ondemand/apps/z/app.sock;"), std::string::npos);
}

TEST(CtlNginxWords, MapKeywordsAreNotHosts) {
    for (const char* h : {"default", "include", "hostnames", "volatile"}) {
        parse_result r = parse_app_file("/e/z.conf", std::string("EXEC=x\nHOSTS=a.example ") + h);
        EXPECT_FALSE(r.app) << h;
        ASSERT_EQ(r.errors.size(), 1U) << h;
        EXPECT_EQ(r.errors[0].key, "HOSTS");
        EXPECT_NE(r.errors[0].message.find("keyword of nginx's map"), std::string::npos);
    }
    EXPECT_TRUE(parse_app_file("/e/z.conf", "EXEC=x\nHOSTS=default.example\n").app);
}
