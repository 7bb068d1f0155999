/* loader.h: loading a configuration generation with the request stages'
 * blocks (core/loader.c): config/ reads and checks the file, the chain
 * configures its stages' blocks through its hook table. */
#ifndef PORTCULLIS_LOADER_H
#define PORTCULLIS_LOADER_H

#include "portcullis/config.h"

/* Loads and fully validates FILE. On success returns a generation with one
 * reference. On failure returns NULL with every problem in err (formatted
 * "FILE:LINE:COL: message"), having freed all it built. Keys of features
 * this build does not have are rejected with "'x' is not supported by this
 * build yet" so that no security setting is ever silently ignored. Errors
 * come back sorted by line and column. */
pc_config *pc_config_load(const char *file, pc_errors *err);
/* Same from a parsed tree (tests, fuzzers). */
pc_config *pc_config_from_node(const pc_node *root, const char *file,
                               pc_errors *err);

#endif
