/*
 * main: the program's edge.  Worker mode (an internal argument, used when the main process
 * starts a worker) goes to worker_main; everything else is options, then one batch.
 */
#include <err.h>
#include <string.h>

#include "thumbr/batch.h"
#include "thumbr/opts.h"
#include "thumbr/pool.h"
#include "thumbr/util.h"
#include "thumbr/worker.h"

int
main(int argc, char **argv)
{
	struct opts o;
	char msg[ERRSZ];

	if (argc >= 2 && strcmp(argv[1], POOL_WORKER_ARG) == 0)
		return worker_main(argc, argv);
	switch (opts_parse(&o, argc, argv, msg, sizeof(msg))) {
	case OPTS_EXIT:
		return 0;
	case OPTS_USAGE:
		warnx("%s", msg);
		opts_usage(stderr);
		return BATCH_USAGE;
	default:
		return batch_run(&o);
	}
}
