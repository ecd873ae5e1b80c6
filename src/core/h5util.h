/* h5util.h - HDF5 helpers shared by every module that reads or writes HDF5 (data, io, diag);
 * private to the library, not part of the public API.
 *
 * Conventions: HDF5's automatic error printing is silenced for the duration of every public
 * function (hn_h5_quiet_on/off), and failures become hn_fail messages that name the file, the
 * object and, where it helps, HDF5's innermost error text (hn_h5_detail). */
#ifndef HAMNET_CORE_H5UTIL_H
#define HAMNET_CORE_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  H5E_auto2_t func;
  void *data;
} hn_h5_quiet;

void hn_h5_quiet_on(hn_h5_quiet *q);
void hn_h5_quiet_off(const hn_h5_quiet *q);

typedef struct {
  char text[320];
  int checksum; /* 1 if some entry of the error stack reports a fletcher32 checksum failure */
} hn_h5_err;

/* " (HDF5: <innermost message of the current error stack>)" or "" - call right after the
 * failing HDF5 call, before the next one clears the stack. For system-call failures inside
 * HDF5 ("file write failed: ... error message = 'No space left on device' ...") only the
 * system's message is kept. When some entry of the stack reports a checksum failure (data:
 * fletcher32; metadata: object header / superblock checksums) the text is instead
 * ": checksum mismatch (the file is corrupted)" and d->checksum is set. */
const char *hn_h5_detail(hn_h5_err *d);

/* Close any HDF5 id (ignoring errors) and set it to H5I_INVALID_HID; negative ids are fine. */
void hn_h5_close(hid_t *id);

/* "float32", "int64", "string", ... */
void hn_h5_type_name(hid_t type, char *buf, size_t size);

/* Whether the link `name` (may contain '/', relative to loc) exists: 1, 0, or -1 on error.
 * Every intermediate component is checked first, so a missing group is not an error. */
int hn_h5_exists(hid_t loc, const char *name);

/* File access property list for opening/creating: file locking used where the file system
 * supports it, ignored where it does not. */
hid_t hn_h5_fapl(void);

/* Scalar attributes. `path` and `where` (e.g. "/model") name the object in messages.
 * Writers return HN_EIO on failure. */
int hn_h5_write_attr_i64(const char *path, hid_t loc, const char *where, const char *name, hid_t filetype,
                         int64_t value);
int hn_h5_write_attr_f64(const char *path, hid_t loc, const char *where, const char *name, double value);
/* Variable-length UTF-8 string (as h5py writes str; h5py reads it back as str). Any length:
 * the text lives in the global heap, not in the attribute's header message. */
int hn_h5_write_attr_str(const char *path, hid_t loc, const char *where, const char *name, const char *value);

/* Readers: HN_EFORMAT when the attribute is missing (*present = 0 instead when present is not
 * NULL), not a single value, or of the wrong class. Integers: any HDF5 integer type, range
 * checked against lo..hi. Doubles: any float or integer type. Strings: fixed or variable
 * length; *value is malloc'ed (free()). */
int hn_h5_read_attr_i64(const char *path, hid_t loc, const char *where, const char *name, int64_t lo, int64_t hi,
                        int64_t *value, int *present);
int hn_h5_read_attr_f64(const char *path, hid_t loc, const char *where, const char *name, double *value,
                        int *present);
int hn_h5_read_attr_str(const char *path, hid_t loc, const char *where, const char *name, char **value,
                        int *present);

#endif
