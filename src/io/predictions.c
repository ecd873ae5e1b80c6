/* predictions.c - write the predictions file of `hamnet eval` (see hamnet/predictions.h). */
#include "hamnet/predictions.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "hamnet/error.h"
#include "hamnet/mem.h"

static int write_array(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
  hid_t space = H5Screate_simple(rank, dims, NULL);
  hid_t dset = space < 0 ? -1 : H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = dset < 0 ? -1 : H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  if (dset >= 0)
    H5Dclose(dset);
  if (space >= 0)
    H5Sclose(space);
  return rc < 0 ? -1 : 0;
}

int hn_predictions_write(const char *path, int64_t n, int n_classes, const float *logits, const int32_t *labels) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int32_t *pred = hn_alloc((size_t)n, sizeof(int32_t), HN_MEM_WORKSPACE, "predictions");
  if (!pred)
    return HN_ENOMEM;
  for (int64_t i = 0; i < n; i++) {
    int best = 0;
    for (int c = 1; c < n_classes; c++)
      if (logits[(size_t)i * n_classes + c] > logits[(size_t)i * n_classes + best])
        best = c;
    pred[i] = best;
  }
  H5E_auto2_t old_func;
  void *old_data;
  H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  int status = HN_OK;
  hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    status = hn_fail(HN_EIO, "cannot create %s (is the folder writable?)", tmp);
  } else {
    hsize_t d1[1] = {(hsize_t)n}, d2[2] = {(hsize_t)n, (hsize_t)n_classes};
    int bad = write_array(file, "pred", H5T_NATIVE_INT32, 1, d1, pred) ||
              write_array(file, "logits", H5T_NATIVE_FLOAT, 2, d2, logits) ||
              write_array(file, "y", H5T_NATIVE_INT32, 1, d1, labels);
    hid_t strtype = H5Tcopy(H5T_C_S1);
    const char *fmt = "hamnet-predictions";
    H5Tset_size(strtype, strlen(fmt));
    hid_t scalar = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "format", strtype, scalar, H5P_DEFAULT, H5P_DEFAULT);
    bad = bad || attr < 0 || H5Awrite(attr, strtype, fmt) < 0;
    if (attr >= 0)
      H5Aclose(attr);
    H5Sclose(scalar);
    H5Tclose(strtype);
    if (H5Fclose(file) < 0 || bad)
      status = hn_fail(HN_EIO, "writing %s failed (disk full?)", tmp);
  }
  H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
  hn_free(pred);
  if (status == HN_OK && rename(tmp, path) != 0)
    status = hn_fail(HN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  if (status != HN_OK)
    remove(tmp);
  return status;
}
