// jemalloc, linked into the `parley` executable as its allocator (it replaces malloc for the
// whole process). Only its control call is declared: jemalloc.h redeclares the C library's
// allocation functions, which the Swift importer need not see twice.
#include <stddef.h>
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
