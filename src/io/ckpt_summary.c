/* ckpt_summary.c - `hamnet inspect` for checkpoint files: a human-readable summary and a
 * JSON variant (hamnet/checkpoint.h). The file is fully verified first (hn_ckpt_verify), so
 * inspecting a corrupted checkpoint reports the corruption instead of printing garbage. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamnet/checkpoint.h"
#include "hamnet/error.h"

#define CK_SUMMARY_HISTORY_ROWS 5

static const char *const hist_names[HN_HISTORY_COLS] = {"epoch",   "train_loss", "train_acc", "val_loss",
                                                        "val_acc", "lr",         "seconds",   "depth", "regularizer"};

typedef struct {
  hn_ckpt_info info;
  hn_model model;
  hn_progress prog;
  char *config;
  double k_min, k_max; /* min / max ||K_j||_F */
  int j_min, j_max;
} ck_summary;

static void summary_free(ck_summary *s) {
  hn_model_destroy(&s->model);
  hn_progress_free(&s->prog);
  free(s->config);
  s->config = NULL;
}

static int summary_load(const char *path, ck_summary *s) {
  memset(s, 0, sizeof *s);
  HN_TRY(hn_ckpt_verify(path));
  HN_TRY(hn_ckpt_read_info(path, &s->info));
  int status = hn_ckpt_read(path, &s->model, NULL, s->info.has_progress ? &s->prog : NULL,
                            s->info.has_config ? &s->config : NULL);
  if (status != HN_OK)
    return status;
  const hn_layout *L = &s->model.layout;
  s->k_min = INFINITY;
  s->k_max = -INFINITY;
  for (int j = 0; j < L->spec.depth; j++) { /* dense: n x n; convolutional: c x c x 3 x 3 */
    const hn_real *K = s->model.params + hn_layout_K_offset(L, j);
    const size_t nn = hn_layout_K_count(L, j);
    double sum = 0;
    for (size_t i = 0; i < nn; i++)
      sum += (double)K[i] * (double)K[i];
    double norm = sqrt(sum);
    if (norm < s->k_min) {
      s->k_min = norm;
      s->j_min = j;
    }
    if (norm > s->k_max) {
      s->k_max = norm;
      s->j_max = j;
    }
  }
  return HN_OK;
}

int hn_ckpt_print_summary(const char *path, FILE *out) {
  ck_summary s;
  int status = summary_load(path, &s);
  if (status != HN_OK) {
    summary_free(&s);
    return status;
  }
  const hn_ckpt_info *in = &s.info;
  const hn_model_spec *sp = &in->spec;
  fprintf(out, "%s: hamnet checkpoint (format_version %d, %lld bytes)\n", path, in->format_version,
          (long long)in->file_bytes);
  fprintf(out, "  written by      hamnet %s (git %s), %s build\n", in->hamnet_version[0] ? in->hamnet_version : "?",
          in->git_hash[0] ? in->git_hash : "?", in->precision[0] ? in->precision : "?");
  fprintf(out, "  arrays          %s%s\n", in->param_type,
          in->checksummed ? ", fletcher32 checksums verified" : ", read back (no checksums stored)");
  fprintf(out, "  model           %s, activation %s, opening %s\n", hn_arch_name(sp->arch),
          hn_activation_name(sp->activation), hn_opening_name(sp->opening));
  fprintf(out, "                  width %d, depth %d, %d features, %d classes, final_time %g (h = %g), gamma %g\n",
          sp->width, sp->depth, sp->n_features, sp->n_classes, sp->final_time, sp->final_time / sp->depth,
          sp->gamma);
  if (sp->n_stages > 0) {
    char stages[160];
    hn_stages_format(sp->n_stages, sp->stage_channels, sp->stage_layers, stages, sizeof stages);
    fprintf(out, "  convolutional   stages %s (channels x layers, h = final_time / layers), norm %s, images %dx%dx%d\n",
            stages, hn_norm_name(sp->norm), sp->image_channels, sp->image_height, sp->image_width);
  }
  fprintf(out, "  n_params        %lld\n", (long long)in->n_params);
  fprintf(out, "  ||K_j||_F       min %.6g (layer %d), max %.6g (layer %d)\n", s.k_min, s.j_min, s.k_max, s.j_max);
  if (in->has_optimizer)
    fprintf(out, "  optimizer       %s, step %ld\n", in->optimizer_kind, in->optimizer_step);
  else
    fprintf(out, "  optimizer       (none stored)\n");
  if (in->has_progress) {
    const hn_progress *p = &s.prog;
    fprintf(out, "  progress        epoch %d, step_in_epoch %ld, global_step %ld, samples_seen %lld\n", p->epoch,
            p->step_in_epoch, p->global_step, (long long)p->samples_seen);
    fprintf(out, "                  level %d, lr %g, recon_stride %d, best val accuracy %.4f (epoch %d)\n", p->level,
            p->lr, p->recon_stride, p->best_val_accuracy, p->best_epoch);
    int first = p->n_history > CK_SUMMARY_HISTORY_ROWS ? p->n_history - CK_SUMMARY_HISTORY_ROWS : 0;
    fprintf(out, "  history         %d epoch%s%s\n", p->n_history, p->n_history == 1 ? "" : "s",
            p->n_history > 0 ? (first > 0 ? ", the last rows:" : ":") : "");
    if (p->n_history > 0) {
      fprintf(out, "   ");
      for (int k = 0; k < HN_HISTORY_COLS; k++)
        fprintf(out, " %11s", hist_names[k]);
      fputc('\n', out);
      for (int r = first; r < p->n_history; r++) {
        const double *row = p->history + (size_t)r * HN_HISTORY_COLS;
        fprintf(out, "   ");
        for (int k = 0; k < HN_HISTORY_COLS; k++) {
          if (k == HN_HIST_EPOCH || k == HN_HIST_DEPTH)
            fprintf(out, " %11.0f", row[k]);
          else
            fprintf(out, " %11.5g", row[k]);
        }
        fputc('\n', out);
      }
    }
  } else {
    fprintf(out, "  progress        (none stored)\n");
  }
  if (in->has_config) {
    fprintf(out, "  config:\n");
    const char *t = s.config;
    while (*t) {
      const char *nl = strchr(t, '\n');
      int len = nl ? (int)(nl - t) : (int)strlen(t);
      fprintf(out, "    %.*s\n", len, t);
      t += len + (nl ? 1 : 0);
    }
  } else {
    fprintf(out, "  config          (none stored)\n");
  }
  summary_free(&s);
  return HN_OK;
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (*p < 0x20)
        fprintf(out, "\\u%04x", *p);
      else
        fputc(*p, out);
    }
  }
  fputc('"', out);
}

static void json_number(FILE *out, double v) {
  if (isfinite(v))
    fprintf(out, "%.17g", v);
  else
    fputs("null", out);
}

int hn_ckpt_print_summary_json(const char *path, FILE *out) {
  ck_summary s;
  int status = summary_load(path, &s);
  if (status != HN_OK) {
    summary_free(&s);
    return status;
  }
  const hn_ckpt_info *in = &s.info;
  const hn_model_spec *sp = &in->spec;
  fputs("{\"file\": ", out);
  json_string(out, path);
  fprintf(out, ", \"format\": \"%s\", \"format_version\": %d, \"file_bytes\": %lld", HN_CKPT_FORMAT,
          in->format_version, (long long)in->file_bytes);
  fputs(", \"hamnet_version\": ", out);
  json_string(out, in->hamnet_version);
  fputs(", \"git_hash\": ", out);
  json_string(out, in->git_hash);
  fputs(", \"precision\": ", out);
  json_string(out, in->precision);
  fputs(", \"stored_type\": ", out);
  json_string(out, in->param_type);
  fprintf(out, ", \"checksummed\": %s", in->checksummed ? "true" : "false");
  fprintf(out, ",\n \"model\": {\"arch\": \"%s\", \"activation\": \"%s\", \"opening\": \"%s\", \"width\": %d, "
          "\"depth\": %d, \"n_features\": %d, \"n_classes\": %d, \"final_time\": ",
          hn_arch_name(sp->arch), hn_activation_name(sp->activation), hn_opening_name(sp->opening), sp->width,
          sp->depth, sp->n_features, sp->n_classes);
  json_number(out, sp->final_time);
  fputs(", \"gamma\": ", out);
  json_number(out, sp->gamma);
  if (sp->n_stages > 0) {
    char stages[160];
    hn_stages_format(sp->n_stages, sp->stage_channels, sp->stage_layers, stages, sizeof stages);
    fprintf(out, ", \"stages\": \"%s\", \"norm\": \"%s\", \"image_shape\": [%d, %d, %d]", stages,
            hn_norm_name(sp->norm), sp->image_channels, sp->image_height, sp->image_width);
  }
  fprintf(out, "}, \"n_params\": %lld", (long long)in->n_params);
  fputs(",\n \"k_norm\": {\"min\": ", out);
  json_number(out, s.k_min);
  fprintf(out, ", \"min_layer\": %d, \"max\": ", s.j_min);
  json_number(out, s.k_max);
  fprintf(out, ", \"max_layer\": %d}", s.j_max);
  if (in->has_optimizer)
    fprintf(out, ",\n \"optimizer\": {\"kind\": \"%s\", \"step\": %ld}", in->optimizer_kind, in->optimizer_step);
  else
    fputs(",\n \"optimizer\": null", out);
  if (in->has_progress) {
    const hn_progress *p = &s.prog;
    fprintf(out, ",\n \"progress\": {\"epoch\": %d, \"step_in_epoch\": %ld, \"global_step\": %ld, "
            "\"samples_seen\": %lld, \"level\": %d, \"best_val_accuracy\": ",
            p->epoch, p->step_in_epoch, p->global_step, (long long)p->samples_seen, p->level);
    json_number(out, p->best_val_accuracy);
    fprintf(out, ", \"best_epoch\": %d, \"lr\": ", p->best_epoch);
    json_number(out, p->lr);
    fprintf(out, ", \"recon_stride\": %d, \"n_history\": %d,\n  \"history_columns\": [", p->recon_stride,
            p->n_history);
    for (int k = 0; k < HN_HISTORY_COLS; k++)
      fprintf(out, "%s\"%s\"", k ? ", " : "", hist_names[k]);
    fputs("],\n  \"history\": [", out);
    for (int r = 0; r < p->n_history; r++) {
      fputs(r ? ",\n   [" : "\n   [", out);
      for (int k = 0; k < HN_HISTORY_COLS; k++) {
        if (k)
          fputs(", ", out);
        json_number(out, p->history[(size_t)r * HN_HISTORY_COLS + k]);
      }
      fputc(']', out);
    }
    fputs("]}", out);
  } else {
    fputs(",\n \"progress\": null", out);
  }
  fputs(",\n \"config\": ", out);
  if (in->has_config)
    json_string(out, s.config);
  else
    fputs("null", out);
  fputs("}\n", out);
  summary_free(&s);
  return HN_OK;
}
