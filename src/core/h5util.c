/* h5util.c - HDF5 helpers shared by data, io and diag: quiet error stack, messages, attributes. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/error.h"
#include "core/h5util.h"

void hn_h5_quiet_on(hn_h5_quiet *q) {
  q->func = NULL;
  q->data = NULL;
  H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void hn_h5_quiet_off(const hn_h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static int contains_nocase(const char *s, const char *word) {
  size_t n = strlen(word);
  for (; *s; s++) {
    size_t k = 0;
    while (k < n && s[k] && tolower((unsigned char)s[k]) == word[k])
      k++;
    if (k == n)
      return 1;
  }
  return 0;
}

static herr_t walk_detail(unsigned n, const H5E_error2_t *err, void *data) {
  hn_h5_err *d = data;
  if (!err || !err->desc)
    return 0;
  if (contains_nocase(err->desc, "fletcher32") || contains_nocase(err->desc, "checksum"))
    d->checksum = 1;
  if (n != 0)
    return 0;
  /* System-call failures: keep only "error message = '...'" (e.g. No space left on device). */
  const char *em = strstr(err->desc, "error message = '");
  if (em) {
    em += strlen("error message = '");
    const char *end = strchr(em, '\'');
    int len = end ? (int)(end - em) : (int)strlen(em);
    snprintf(d->text, sizeof d->text, " (HDF5: %.*s)", len, em);
  } else {
    snprintf(d->text, sizeof d->text, " (HDF5: %s)", err->desc);
  }
  return 0;
}

const char *hn_h5_detail(hn_h5_err *d) {
  d->text[0] = '\0';
  d->checksum = 0;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_detail, d);
  if (d->checksum)
    snprintf(d->text, sizeof d->text, ": checksum mismatch (the file is corrupted)");
  return d->text;
}

void hn_h5_close(hid_t *id) {
  if (*id < 0)
    return;
  switch (H5Iget_type(*id)) {
  case H5I_FILE: H5Fclose(*id); break;
  case H5I_DATASET: H5Dclose(*id); break;
  case H5I_DATASPACE: H5Sclose(*id); break;
  case H5I_DATATYPE: H5Tclose(*id); break;
  case H5I_ATTR: H5Aclose(*id); break;
  case H5I_GENPROP_LST: H5Pclose(*id); break;
  case H5I_GROUP: H5Gclose(*id); break;
  default: break;
  }
  *id = H5I_INVALID_HID;
}

void hn_h5_type_name(hid_t t, char *buf, size_t n) {
  size_t bits = H5Tget_size(t) * 8;
  switch (H5Tget_class(t)) {
  case H5T_FLOAT: snprintf(buf, n, "float%zu", bits); break;
  case H5T_INTEGER: snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits); break;
  case H5T_STRING: snprintf(buf, n, "string"); break;
  case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
  case H5T_ENUM: snprintf(buf, n, "enum/bool"); break;
  case H5T_ARRAY: snprintf(buf, n, "array"); break;
  default: snprintf(buf, n, "other"); break;
  }
}

int hn_h5_exists(hid_t loc, const char *name) {
  char part[512];
  size_t len = strlen(name);
  if (len >= sizeof part)
    return -1;
  for (size_t i = 1; i <= len; i++) {
    if (i < len && name[i] != '/')
      continue;
    memcpy(part, name, i);
    part[i] = '\0';
    htri_t e = H5Lexists(loc, part, H5P_DEFAULT);
    if (e <= 0)
      return e < 0 ? -1 : 0;
  }
  return 1;
}

hid_t hn_h5_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl >= 0)
    H5Pset_file_locking(fapl, 1, 1);
  return fapl;
}

/* --- writing attributes ------------------------------------------------------------------- */

static int write_attr(const char *path, hid_t loc, const char *where, const char *name, hid_t filetype,
                      hid_t memtype, const void *value) {
  hn_h5_err d;
  hid_t space = H5Screate(H5S_SCALAR), attr = H5I_INVALID_HID;
  int status = HN_OK;
  if (space < 0 || (attr = H5Acreate2(loc, name, filetype, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
      H5Awrite(attr, memtype, value) < 0)
    status = hn_fail(HN_EIO, "cannot write attribute %s of %s to %s%s", name, where, path, hn_h5_detail(&d));
  if (attr >= 0 && H5Aclose(attr) < 0 && status == HN_OK)
    status = hn_fail(HN_EIO, "cannot write attribute %s of %s to %s%s", name, where, path, hn_h5_detail(&d));
  hn_h5_close(&space);
  return status;
}

int hn_h5_write_attr_i64(const char *path, hid_t loc, const char *where, const char *name, hid_t filetype,
                         int64_t value) {
  return write_attr(path, loc, where, name, filetype, H5T_NATIVE_INT64, &value);
}

int hn_h5_write_attr_f64(const char *path, hid_t loc, const char *where, const char *name, double value) {
  return write_attr(path, loc, where, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int hn_h5_write_attr_str(const char *path, hid_t loc, const char *where, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  if (type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
    hn_h5_close(&type);
    return hn_fail(HN_EIO, "cannot write attribute %s of %s to %s (string type)", name, where, path);
  }
  const char *v = value ? value : "";
  int status = write_attr(path, loc, where, name, type, type, &v);
  hn_h5_close(&type);
  return status;
}

/* --- reading attributes ------------------------------------------------------------------- */

/* Open attribute `name` of loc; check it is a single value of class `want` (or also
 * `also`, when >= 0). *attr / *type are open on success; *present = 0 and HN_OK when absent
 * and present != NULL. */
static int open_attr(const char *path, hid_t loc, const char *where, const char *name, H5T_class_t want,
                     int also, const char *want_name, hid_t *attr, hid_t *type, int *present) {
  hn_h5_err d;
  *attr = *type = H5I_INVALID_HID;
  if (present)
    *present = 0;
  htri_t exists = H5Aexists(loc, name);
  if (exists < 0)
    return hn_fail(HN_EFORMAT, "%s: cannot look up attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
  if (exists == 0) {
    if (present)
      return HN_OK;
    return hn_fail(HN_EFORMAT, "%s: attribute %s of %s is missing", path, name, where);
  }
  hid_t space = H5I_INVALID_HID;
  int status = HN_OK;
  char tname[32] = "?";
  *attr = H5Aopen(loc, name, H5P_DEFAULT);
  if (*attr < 0 || (*type = H5Aget_type(*attr)) < 0 || (space = H5Aget_space(*attr)) < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot open attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
    goto out;
  }
  H5T_class_t cls = H5Tget_class(*type);
  if (cls != want && (also < 0 || cls != (H5T_class_t)also)) {
    hn_h5_type_name(*type, tname, sizeof tname);
    status = hn_fail(HN_EFORMAT, "%s: attribute %s of %s has type %s; expected %s", path, name, where, tname,
                     want_name);
    goto out;
  }
  hssize_t npoints = H5Sget_simple_extent_npoints(space);
  if (npoints != 1) {
    status = hn_fail(HN_EFORMAT, "%s: attribute %s of %s must be a single value (it has %lld)", path, name, where,
                     (long long)npoints);
    goto out;
  }
  if (present)
    *present = 1;
out:
  hn_h5_close(&space);
  if (status != HN_OK) {
    hn_h5_close(type);
    hn_h5_close(attr);
  }
  return status;
}

int hn_h5_read_attr_i64(const char *path, hid_t loc, const char *where, const char *name, int64_t lo, int64_t hi,
                        int64_t *value, int *present) {
  hn_h5_err d;
  hid_t attr, type;
  int status = open_attr(path, loc, where, name, H5T_INTEGER, -1, "an integer", &attr, &type, present);
  if (status != HN_OK || attr < 0)
    return status;
  long long v = 0;
  if (H5Aread(attr, H5T_NATIVE_LLONG, &v) < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot read attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
  else if (v < lo || v > hi)
    status = hn_fail(HN_EFORMAT, "%s: attribute %s of %s = %lld is outside %lld..%lld", path, name, where, v,
                     (long long)lo, (long long)hi);
  else
    *value = (int64_t)v;
  hn_h5_close(&type);
  hn_h5_close(&attr);
  if (status != HN_OK && present)
    *present = 0;
  return status;
}

int hn_h5_read_attr_f64(const char *path, hid_t loc, const char *where, const char *name, double *value,
                        int *present) {
  hn_h5_err d;
  hid_t attr, type;
  int status =
      open_attr(path, loc, where, name, H5T_FLOAT, (int)H5T_INTEGER, "a number", &attr, &type, present);
  if (status != HN_OK || attr < 0)
    return status;
  double v = 0;
  if (H5Aread(attr, H5T_NATIVE_DOUBLE, &v) < 0)
    status = hn_fail(HN_EFORMAT, "%s: cannot read attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
  else
    *value = v;
  hn_h5_close(&type);
  hn_h5_close(&attr);
  if (status != HN_OK && present)
    *present = 0;
  return status;
}

int hn_h5_read_attr_str(const char *path, hid_t loc, const char *where, const char *name, char **value,
                        int *present) {
  hn_h5_err d;
  hid_t attr, type, mtype = H5I_INVALID_HID;
  *value = NULL;
  int status = open_attr(path, loc, where, name, H5T_STRING, -1, "a string", &attr, &type, present);
  if (status != HN_OK || attr < 0)
    return status;
  mtype = H5Tcopy(H5T_C_S1);
  if (mtype < 0) {
    status = hn_fail(HN_EFORMAT, "%s: cannot read attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
  } else if (H5Tis_variable_str(type) > 0) {
    char *s = NULL;
    H5Tset_size(mtype, H5T_VARIABLE);
    H5Tset_cset(mtype, H5Tget_cset(type));
    if (H5Aread(attr, mtype, &s) < 0) {
      status = hn_fail(HN_EFORMAT, "%s: cannot read attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
    } else {
      size_t len = s ? strlen(s) : 0;
      *value = malloc(len + 1);
      if (!*value)
        status = hn_fail(HN_ENOMEM, "%s: out of memory reading attribute %s of %s", path, name, where);
      else {
        if (len)
          memcpy(*value, s, len);
        (*value)[len] = '\0';
      }
    }
    if (s)
      H5free_memory(s);
  } else {
    size_t len = H5Tget_size(type);
    char *s = len < ((size_t)1 << 30) ? calloc(len + 1, 1) : NULL;
    if (!s) {
      status = hn_fail(HN_ENOMEM, "%s: cannot read attribute %s of %s (%zu bytes)", path, name, where, len);
    } else {
      H5Tset_size(mtype, len + 1);
      H5Tset_strpad(mtype, H5T_STR_NULLTERM);
      H5Tset_cset(mtype, H5Tget_cset(type));
      if (H5Aread(attr, mtype, s) < 0) {
        status = hn_fail(HN_EFORMAT, "%s: cannot read attribute %s of %s%s", path, name, where, hn_h5_detail(&d));
        free(s);
      } else {
        *value = s;
      }
    }
  }
  hn_h5_close(&mtype);
  hn_h5_close(&type);
  hn_h5_close(&attr);
  if (status != HN_OK && present)
    *present = 0;
  return status;
}
