/*
 * The test runner: every module's suite, then the end-to-end suite that drives the real
 * binary ($THUMBR_BIN) over testdata/ ($THUMBR_TESTDATA) and trees made in temporary
 * directories.  CK_FORK=no runs the tests in-process (for gdb); CK_RUN_SUITE=ring runs one.
 */
#include <stdlib.h>

#include "suites.h"

int
main(void)
{
	SRunner *sr = srunner_create(ring_suite());
	int failed;

	srunner_add_suite(sr, opts_suite());
	srunner_add_suite(sr, plan_suite());
	srunner_add_suite(sr, scan_suite());
	srunner_add_suite(sr, out_suite());
	srunner_add_suite(sr, resample_suite());
	srunner_add_suite(sr, jpegprog_suite());
	srunner_add_suite(sr, pngrows_suite());
	srunner_add_suite(sr, chroma_suite());
	srunner_add_suite(sr, icc_suite());
	srunner_add_suite(sr, img_suite());
	srunner_add_suite(sr, state_suite());
	srunner_add_suite(sr, e2e_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
