/* OpenMP when the build has it, a one-thread stand-in when it does not (neuroplug_core._openmp). */
#ifndef NEUROPLUG_NP_OPENMP_H
#define NEUROPLUG_NP_OPENMP_H

#ifdef _OPENMP
#include <omp.h>
#define NEUROPLUG_OPENMP 1
#else
#define NEUROPLUG_OPENMP 0
static int omp_get_max_threads(void) { return 1; }
#endif

#endif /* NEUROPLUG_NP_OPENMP_H */
