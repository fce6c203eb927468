// The project's version, the one place it is written: ondemand-helperd --version and
// ondemandctl --version print it.
#ifndef ONDEMAND_VERSION_H
#define ONDEMAND_VERSION_H

#define ONDEMAND_VERSION "0.1"

#endif
