/*
 * prune: delete the thumbnails whose source is gone.  Only files that carry thumbr's record
 * (thumbr/state.h) are ever considered, so nothing thumbr did not make is touched; with
 * --shard only records whose source belongs to this shard.  Directories left empty by a
 * deletion are removed, up to (not including) OUTPUT_DIR/SIZE.  A whole run (not a shard,
 * which shares OUTPUT_DIR) also removes temporary files left by killed runs.  Main thread
 * only, before the workers start.
 */
#ifndef THUMBR_PRUNE_H
#define THUMBR_PRUNE_H

#include "thumbr/opts.h"

/* Prune every size folder of o->output (dry: only report).  Returns the count, reporting
 * each path through report_pruned and each error through report_fail (*failed counts them). */
unsigned long prune_run(const struct opts *o, int (*mine)(const struct opts *, const char *rel),
    unsigned long *failed);

#endif
