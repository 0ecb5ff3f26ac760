/* One Check suite per module; check_main.c runs them all. */
#ifndef THUMBR_TEST_SUITES_H
#define THUMBR_TEST_SUITES_H

#include <check.h>

Suite *ring_suite(void);
Suite *opts_suite(void);
Suite *plan_suite(void);
Suite *scan_suite(void);
Suite *out_suite(void);
Suite *img_suite(void);
Suite *resample_suite(void);
Suite *jpegprog_suite(void);
Suite *pngrows_suite(void);
Suite *chroma_suite(void);
Suite *icc_suite(void);
Suite *state_suite(void);
Suite *e2e_suite(void);

#endif
