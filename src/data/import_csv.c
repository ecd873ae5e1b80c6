/* import_csv.c - CSV to data set (see hn_import_csv in hamnet/data.h).
 *
 * One pass over the file with getline; rows are parsed into staging buffers that double as
 * they fill (hn_alloc'ed, so they count as data memory), then copied into an exactly sized
 * data set. Every error names FILE:LINE and the 1-based column. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/data.h"
#include "hamnet/error.h"
#include "hamnet/mem.h"

void hn_csv_options_default(hn_csv_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->label_column = -1;
  opt->header = HN_CSV_HEADER_AUTO;
  opt->delimiter = ',';
  opt->n_classes = 0;
  opt->text_labels = 0;
}

void hn_label_names_free(hn_label_names *names) {
  if (!names)
    return;
  for (int i = 0; i < names->count; i++)
    free(names->name[i]);
  free(names->name);
  names->name = NULL;
  names->count = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Splitting a line into cells                                                               */

typedef struct {
  char **cell;
  int count, cap;
} cells;

static int is_blank(char ch, char delim) { return (ch == ' ' || ch == '\t') && ch != delim; }

static int push_cell(cells *c, char *s) {
  if (c->count == c->cap) {
    int cap = c->cap ? 2 * c->cap : 64;
    char **p = realloc(c->cell, (size_t)cap * sizeof *p);
    if (!p)
      return -1;
    c->cell = p;
    c->cap = cap;
  }
  c->cell[c->count++] = s;
  return 0;
}

/* Split `line` in place. delim ' ' means "runs of blanks". Quoted cells ("...", "" = ") are
 * unquoted. Returns HN_OK or an HN_EFORMAT message "FILE:LINE: column K: ...". */
static int split_line(char *line, char delim, cells *c, const char *path, long line_no) {
  c->count = 0;
  const int blank_mode = delim == ' ';
  char *p = line;
  if (blank_mode)
    while (*p == ' ' || *p == '\t')
      p++;
  for (;;) {
    int col = c->count + 1;
    if (!blank_mode)
      while (is_blank(*p, delim))
        p++;
    char *cell, *end;
    if (*p == '"') {
      char *out = ++p;
      cell = out;
      int closed = 0;
      while (*p) {
        if (*p == '"') {
          if (p[1] == '"') {
            *out++ = '"';
            p += 2;
            continue;
          }
          p++;
          closed = 1;
          break;
        }
        *out++ = *p++;
      }
      if (!closed)
        return hn_fail(HN_EFORMAT, "%s:%ld: column %d: unterminated quote (quoted cells cannot span lines)", path,
                       line_no, col);
      end = out;
      if (!blank_mode)
        while (is_blank(*p, delim))
          p++;
      int at_sep = blank_mode ? (*p == ' ' || *p == '\t') : *p == delim;
      if (*p != '\0' && !at_sep)
        return hn_fail(HN_EFORMAT, "%s:%ld: column %d: unexpected text after the closing quote", path, line_no,
                       col);
    } else {
      cell = p;
      if (blank_mode)
        while (*p && *p != ' ' && *p != '\t')
          p++;
      else
        while (*p && *p != delim)
          p++;
      end = p;
      if (!blank_mode)
        while (end > cell && is_blank(end[-1], delim))
          end--;
    }
    char sep = *p; /* '\0' or a separator; read before terminating the cell (end <= p) */
    *end = '\0';
    if (push_cell(c, cell) != 0)
      return hn_fail(HN_ENOMEM, "%s:%ld: out of memory splitting the line", path, line_no);
    if (sep == '\0')
      return HN_OK;
    p++;
    if (blank_mode) {
      while (*p == ' ' || *p == '\t')
        p++;
      if (*p == '\0')
        return HN_OK; /* trailing blanks */
    }
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Cells                                                                                     */

static int parses_as_number(const char *s) {
  if (!*s)
    return 0;
  char *end = NULL;
  errno = 0;
  strtod(s, &end);
  return end != s && *end == '\0';
}

static int parse_feature(const char *s, float *out, const char *path, long line_no, int col) {
  if (!*s)
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: empty cell", path, line_no, col);
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0')
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: '%.40s' is not a number", path, line_no, col, s);
  if (!isfinite(v))
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: '%.40s' is not a finite number", path, line_no, col, s);
  if (fabs(v) > FLT_MAX)
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: %.40s is beyond the float32 range (|x| <= %g)", path, line_no,
                   col, s, (double)FLT_MAX);
  *out = (float)v;
  return HN_OK;
}

static int parse_label(const char *s, int n_classes, int32_t *out, const char *path, long line_no, int col) {
  if (!*s)
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: empty label", path, line_no, col);
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !isfinite(v) || v < 0 || v != floor(v))
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: label '%.40s' is not a non-negative integer (for text "
                   "labels use --text-labels)", path, line_no, col, s);
  int limit = n_classes > 0 ? n_classes : HN_DATA_MAX_CLASSES;
  if (v >= limit)
    return hn_fail(HN_EFORMAT, "%s:%ld: column %d: label %.40s is out of range 0..%d%s", path, line_no, col, s,
                   limit - 1, n_classes > 0 ? " (n_classes given)" : " (too many classes)");
  *out = (int32_t)v;
  return HN_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---------------------------------------------------------------------------------------- */

typedef struct {
  float *x;
  int32_t *y;
  char **text; /* text-label mode: the label of each row (malloc'ed) */
  int64_t n, cap;
} staging;

static void staging_free(staging *s) {
  hn_free(s->x);
  hn_free(s->y);
  if (s->text) {
    for (int64_t i = 0; i < s->n; i++)
      free(s->text[i]);
    free(s->text);
  }
  memset(s, 0, sizeof *s);
}

static int staging_grow(staging *s, int64_t F, int text) {
  int64_t cap = s->cap ? 2 * s->cap : 1024;
  if ((double)cap * (double)F * 4.0 > (double)HN_DATA_MAX_BYTES)
    cap = HN_DATA_MAX_BYTES / (4 * F);
  if (cap <= s->n)
    return hn_fail(HN_ENOMEM, "more than %lld GiB of features (HN_DATA_MAX_BYTES)",
                   (long long)(HN_DATA_MAX_BYTES >> 30));
  float *x = hn_alloc((size_t)cap * (size_t)F, sizeof(float), HN_MEM_DATA, "CSV features");
  int32_t *y = x ? hn_alloc((size_t)cap, sizeof(int32_t), HN_MEM_DATA, "CSV labels") : NULL;
  char **t = y && text ? malloc((size_t)cap * sizeof(char *)) : NULL;
  if (!y || (text && !t)) {
    hn_free(x);
    hn_free(y);
    return hn_fail(HN_ENOMEM, "out of memory reading CSV rows");
  }
  if (s->n) {
    memcpy(x, s->x, (size_t)s->n * (size_t)F * sizeof(float));
    memcpy(y, s->y, (size_t)s->n * sizeof(int32_t));
    if (text)
      memcpy(t, s->text, (size_t)s->n * sizeof(char *));
  }
  hn_free(s->x);
  hn_free(s->y);
  free(s->text);
  s->x = x;
  s->y = y;
  s->text = t;
  s->cap = cap;
  return HN_OK;
}

/* Map text labels to classes in strcmp order; fills s->y and the names. */
static int map_text_labels(staging *s, const hn_csv_options *opt, const char *path, hn_label_names *names,
                           int *n_classes) {
  char **sorted = malloc((size_t)s->n * sizeof(char *));
  if (!sorted)
    return hn_fail(HN_ENOMEM, "%s: out of memory mapping labels", path);
  memcpy(sorted, s->text, (size_t)s->n * sizeof(char *));
  qsort(sorted, (size_t)s->n, sizeof(char *), cmp_str);
  int64_t m = 0;
  for (int64_t i = 0; i < s->n; i++)
    if (m == 0 || strcmp(sorted[m - 1], sorted[i]) != 0)
      sorted[m++] = sorted[i];
  int limit = opt->n_classes > 0 ? opt->n_classes : HN_DATA_MAX_CLASSES;
  if (m > limit) {
    free(sorted);
    return hn_fail(HN_EFORMAT, "%s: %lld distinct labels but %s %d", path, (long long)m,
                   opt->n_classes > 0 ? "n_classes is" : "the most classes supported is", limit);
  }
  for (int64_t i = 0; i < s->n; i++) {
    char **hit = bsearch(&s->text[i], sorted, (size_t)m, sizeof(char *), cmp_str);
    s->y[i] = (int32_t)(hit - sorted);
  }
  int status = HN_OK;
  if (names) {
    names->name = calloc((size_t)m, sizeof(char *));
    if (!names->name)
      status = hn_fail(HN_ENOMEM, "%s: out of memory keeping label names", path);
    for (int64_t c = 0; status == HN_OK && c < m; c++) {
      names->name[c] = strdup(sorted[c]);
      names->count = (int)c + 1;
      if (!names->name[c])
        status = hn_fail(HN_ENOMEM, "%s: out of memory keeping label names", path);
    }
    if (status != HN_OK)
      hn_label_names_free(names);
  }
  free(sorted);
  *n_classes = opt->n_classes > 0 ? opt->n_classes : (int)m;
  return status;
}

int hn_import_csv_names(const char *path, const hn_csv_options *opt_in, hn_dataset *out, hn_label_names *names) {
  memset(out, 0, sizeof *out);
  if (names) {
    names->count = 0;
    names->name = NULL;
  }
  hn_csv_options opt;
  if (opt_in)
    opt = *opt_in;
  else
    hn_csv_options_default(&opt);
  if (opt.delimiter == '\0' || opt.delimiter == '"' || opt.delimiter == '\n' || opt.delimiter == '\r')
    return hn_fail(HN_EINVAL, "CSV delimiter must be a single character other than a quote or newline");
  if (opt.n_classes < 0 || opt.n_classes > HN_DATA_MAX_CLASSES)
    return hn_fail(HN_EINVAL, "n_classes %d is outside 1..%d", opt.n_classes, HN_DATA_MAX_CLASSES);
  FILE *f = fopen(path, "rb");
  if (!f)
    return hn_fail(HN_EIO, "cannot open %s: %s", path, strerror(errno));

  int status = HN_OK;
  char *line = NULL;
  size_t line_cap = 0;
  ssize_t len;
  long line_no = 0, first_line = 0;
  int ncols = 0, label_col = -1, header_seen = 0;
  int64_t F = 0;
  cells c = {NULL, 0, 0};
  staging s = {0};
  while ((len = getline(&line, &line_cap, f)) >= 0) {
    line_no++;
    if (memchr(line, '\0', (size_t)len)) {
      status = hn_fail(HN_EFORMAT, "%s:%ld: contains a NUL byte - not a text file", path, line_no);
      goto done;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    char *text = line;
    if (line_no == 1 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
      text += 3; /* UTF-8 byte order mark */
    const char *q = text;
    while (*q == ' ' || *q == '\t')
      q++;
    if (*q == '\0')
      continue; /* blank line */
    if ((status = split_line(text, opt.delimiter, &c, path, line_no)) != HN_OK)
      goto done;
    if (ncols == 0) {
      /* The first non-blank line fixes the column count, the label column and the header. */
      ncols = c.count;
      first_line = line_no;
      if (ncols < 2) {
        status = hn_fail(HN_EFORMAT, "%s:%ld: only one column; need a label and at least one feature (wrong "
                         "delimiter? it is '%c')", path, line_no, opt.delimiter);
        goto done;
      }
      label_col = opt.label_column < 0 ? ncols + opt.label_column : opt.label_column;
      if (label_col < 0 || label_col >= ncols) {
        status = hn_fail(HN_EINVAL, "%s: label column %d is outside the file's %d columns (0..%d, or -1..-%d from "
                         "the end)", path, opt.label_column, ncols, ncols - 1, ncols);
        goto done;
      }
      F = ncols - 1;
      int header = opt.header == HN_CSV_HEADER_YES;
      if (opt.header == HN_CSV_HEADER_AUTO)
        for (int k = 0; k < ncols && !header; k++)
          if ((k != label_col || !opt.text_labels) && !parses_as_number(c.cell[k]))
            header = 1;
      if (header) {
        header_seen = 1;
        continue;
      }
    } else if (c.count != ncols) {
      status = hn_fail(HN_EFORMAT, "%s:%ld: %d columns, expected %d (as on line %ld)", path, line_no, c.count, ncols,
                       first_line);
      goto done;
    }
    if (s.n == s.cap && (status = staging_grow(&s, F, opt.text_labels)) != HN_OK) {
      hn_fail_context(status, "%s:%ld", path, line_no);
      goto done;
    }
    float *x = s.x + s.n * F;
    for (int k = 0, j = 0; k < ncols; k++) {
      if (k == label_col)
        continue;
      if ((status = parse_feature(c.cell[k], &x[j++], path, line_no, k + 1)) != HN_OK)
        goto done;
    }
    if (opt.text_labels) {
      if (!*c.cell[label_col]) {
        status = hn_fail(HN_EFORMAT, "%s:%ld: column %d: empty label", path, line_no, label_col + 1);
        goto done;
      }
      s.text[s.n] = strdup(c.cell[label_col]);
      if (!s.text[s.n]) {
        status = hn_fail(HN_ENOMEM, "%s:%ld: out of memory", path, line_no);
        goto done;
      }
    } else if ((status = parse_label(c.cell[label_col], opt.n_classes, &s.y[s.n], path, line_no, label_col + 1)) !=
               HN_OK) {
      goto done;
    }
    s.n++;
  }
  if (ferror(f)) {
    status = hn_fail(HN_EIO, "%s:%ld: read error: %s", path, line_no + 1, strerror(errno));
    goto done;
  }
  if (s.n == 0) {
    status = hn_fail(HN_EFORMAT, "%s: no data rows%s", path,
                     ncols == 0 ? " (the file is empty)" : header_seen ? " (only a header line)" : "");
    goto done;
  }
  int n_classes = 0;
  if (opt.text_labels) {
    if ((status = map_text_labels(&s, &opt, path, names, &n_classes)) != HN_OK)
      goto done;
  } else if (opt.n_classes > 0) {
    n_classes = opt.n_classes;
  } else {
    for (int64_t i = 0; i < s.n; i++)
      n_classes = s.y[i] + 1 > n_classes ? s.y[i] + 1 : n_classes;
  }
  int64_t dims[1] = {F};
  if ((status = hn_dataset_alloc(out, s.n, 1, dims, n_classes)) != HN_OK) {
    hn_fail_context(status, "%s", path);
    goto done;
  }
  memcpy(out->X, s.x, (size_t)s.n * (size_t)F * sizeof(float));
  memcpy(out->y, s.y, (size_t)s.n * sizeof(int32_t));
done:
  if (status != HN_OK) {
    hn_dataset_free(out);
    hn_label_names_free(names);
  }
  staging_free(&s);
  free(c.cell);
  free(line);
  fclose(f);
  return status;
}

int hn_import_csv(const char *path, const hn_csv_options *opt, hn_dataset *out) {
  return hn_import_csv_names(path, opt, out, NULL);
}
