/* fuzz_config.c: libFuzzer target for configuration loading, the code -t
 * and the start run on an operator's file: YAML into the node tree
 * (config/node.c), every block checked (config/config*.c and the chain stages'
 * blocks), the JSON view of /admin/config, then freeing. A loaded config
 * must produce JSON; a failed one must have said why. */
#include <jansson.h>
#include <stdlib.h>

#include "portcullis/config.h"
#include "portcullis/loader.h"
#include "portcullis/node.h"
#include "portcullis/tls.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static int init;
    if (!init) {
        pc_tls_global_init();
        init = 1;
    }
    pc_errors err;
    pc_errors_init(&err, "fuzz.yaml");
    pc_node *root = pc_node_load_string((const char *)data, size, &err);
    if (root) {
        size_t before = err.n;
        pc_config *c = pc_config_from_node(root, "fuzz.yaml", &err);
        if (c) {
            json_t *j = pc_config_to_json(c);
            if (!j)
                abort();
            json_decref(j);
            pc_config_unref(c);
        } else if (err.n == before) {
            abort(); /* refused without a message */
        }
        pc_node_free(root);
    } else if (err.n == 0) {
        abort();
    }
    pc_errors_free(&err);
    return 0;
}
