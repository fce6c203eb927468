// The project's version: ondemand-helperd --version and ondemandctl --version print it.
// Its one source is debian/changelog's first line, which the build passes in as
// -DONDEMAND_VERSION="..." (CMakeLists.txt; the Makefile for the fuzz targets), so the binaries
// and the Debian packages always agree (scripts/test-deb checks it).
#ifndef ONDEMAND_VERSION_H
#define ONDEMAND_VERSION_H

#ifndef ONDEMAND_VERSION
#error "ONDEMAND_VERSION is not defined: build with CMake (it reads debian/changelog)"
#endif

#endif
