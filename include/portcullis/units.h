/* units.h: parsing of the config file's durations and sizes (CONTRACT §2).
 * Pure functions: no allocation, no I/O. */
#ifndef PORTCULLIS_UNITS_H
#define PORTCULLIS_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parses a duration such as "250ms", "10s", "5m", "1h", "1m30s", "1h2m3s4ms".
 * Units: ms, s, m, h (d is accepted too: days). Each component is a decimal
 * integer followed by a unit; units must appear in strictly decreasing order
 * of size, each at most once. A bare number without unit is rejected.
 * On success stores milliseconds in *ms and returns 0. On failure returns -1
 * and, when err/errlen is given, writes a short human message ("missing unit",
 * "unknown unit 'x'", "overflow", ...). */
int pc_parse_duration(const char *s, uint64_t *ms, char *err, size_t errlen);

/* Parses a size: a plain decimal integer (bytes) or an integer followed by
 * one of k, m, g (also K, M, G, and the forms kb/KiB are NOT accepted),
 * 1024-based. Returns 0 and stores bytes, or -1 with a message as above. */
int pc_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen);

/* Formats ms back into the shortest canonical duration ("1m30s", "250ms",
 * "0s") into buf; returns buf. */
char *pc_format_duration(uint64_t ms, char *buf, size_t len);

#endif
