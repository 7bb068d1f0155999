/* loader.c: the configuration loader with the chain's stage hooks: the
 * one place that ties config/ (which knows no stage) to chain/. */
#include "portcullis/loader.h"

#include "portcullis/chain.h"

pc_config *pc_config_load(const char *file, pc_errors *err)
{
    return pc_config_load_with(file, &pc_chain_config_hooks, err);
}

pc_config *pc_config_from_node(const pc_node *root, const char *file,
                               pc_errors *err)
{
    return pc_config_from_node_with(root, file, &pc_chain_config_hooks, err);
}
