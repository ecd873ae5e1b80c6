/* cmd_train.c - `hamnet train CONFIG [--run-dir DIR] [--set section.key=value ...]`. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "hamnet/config.h"
#include "hamnet/error.h"
#include "hamnet/log.h"
#include "hamnet/parallel.h"
#include "hamnet/train.h"

static const char *usage =
    "Usage: hamnet train CONFIG.ini [options]\n"
    "\n"
    "Train the network described by CONFIG.ini (README \"Configuration\"). If the run folder\n"
    "already holds checkpoints, training resumes from the newest valid one.\n"
    "\n"
    "Options:\n"
    "  --run-dir DIR            run folder for checkpoints, logs and diagnostics\n"
    "                           (default: runs/<CONFIG name without .ini>)\n"
    "  --set SECTION.KEY=VALUE  override a config key; repeatable (e.g. --set model.depth=512)\n"
    "  --threads N              OpenMP threads per rank (overrides train.threads; default:\n"
    "                           OMP_NUM_THREADS, else all cores)\n"
    "  --print-config           print the resolved configuration and exit\n"
    "  --list-keys              print every config key (Markdown table) and exit\n"
    "  --quiet                  only warnings and errors\n"
    "  -h, --help               this text\n"
    "\n"
    "Under MPI: mpirun -np 2 hamnet train CONFIG.ini (each rank takes a slice of every global\n"
    "batch). Exit codes: 0 finished, 1 error, 2 usage/config error, 3 diverged, 75 stopped by\n"
    "SIGUSR1/SIGTERM/SIGINT after a checkpoint (run the same command again to resume).\n";

static void default_run_dir(const char *config_path, char *out, size_t size) {
  const char *base = strrchr(config_path, '/');
  base = base ? base + 1 : config_path;
  size_t len = strlen(base);
  if (len > 4 && strcmp(base + len - 4, ".ini") == 0)
    len -= 4;
  snprintf(out, size, "runs/%.*s", (int)len, base);
}

int hn_cmd_train(int argc, char **argv) {
  const char *config_path = NULL, *run_dir = NULL, *value;
  const char *sets[256];
  int n_sets = 0, print_config = 0;
  long threads = -1;
  for (int i = 1; i < argc; i++) {
    int m;
    if (hn_cli_is_help(argv[i])) {
      if (hn_log_rank() == 0)
        fputs(usage, stdout);
      return HN_EXIT_OK;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--run-dir", &value)) != 0) {
      if (m < 0)
        return hn_cli_usage_error("train", "--run-dir needs a folder");
      run_dir = value;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--set", &value)) != 0) {
      if (m < 0)
        return hn_cli_usage_error("train", "--set needs SECTION.KEY=VALUE");
      if (n_sets == (int)(sizeof sets / sizeof sets[0]))
        return hn_cli_usage_error("train", "too many --set options");
      sets[n_sets++] = value;
    } else if ((m = hn_cli_opt(argc, argv, &i, "--threads", &value)) != 0) {
      if (m < 0 || hn_cli_parse_long(value, 1, 4096, &threads) != 0)
        return hn_cli_usage_error("train", "--threads needs a number from 1 to 4096");
    } else if (hn_cli_flag(argv, i, "--list-keys")) {
      if (hn_log_rank() == 0)
        hn_config_print_keys(stdout);
      return HN_EXIT_OK;
    } else if (hn_cli_flag(argv, i, "--print-config")) {
      print_config = 1;
    } else if (hn_cli_flag(argv, i, "--quiet")) {
      hn_log_set_level(HN_LOG_WARN);
    } else if (argv[i][0] == '-') {
      return hn_cli_usage_error("train", "unknown option '%s'", argv[i]);
    } else if (!config_path) {
      config_path = argv[i];
    } else {
      return hn_cli_usage_error("train", "only one CONFIG file (got '%s' and '%s')", config_path, argv[i]);
    }
  }
  if (!config_path)
    return hn_cli_usage_error("train", "missing CONFIG.ini");

  hn_config cfg;
  hn_config_defaults(&cfg);
  int status = hn_config_load(&cfg, config_path);
  for (int k = 0; k < n_sets && status == HN_OK; k++)
    status = hn_config_set(&cfg, sets[k]);
  if (status == HN_OK)
    status = hn_config_validate(&cfg, 1);
  if (status != HN_OK) {
    if (hn_log_rank() == 0)
      hn_error_report(status);
    return hn_exit_code(status);
  }
  if (threads > 0)
    cfg.train.threads = (int)threads;
  if (cfg.train.threads > 0)
    omp_set_num_threads(cfg.train.threads);
  if (print_config) {
    char *text = hn_config_to_ini(&cfg);
    if (hn_log_rank() == 0 && text)
      fputs(text, stdout);
    free(text);
    return HN_EXIT_OK;
  }
  char dir[HN_PATH_MAX];
  if (run_dir)
    snprintf(dir, sizeof dir, "%s", run_dir);
  else
    default_run_dir(config_path, dir, sizeof dir);

  hn_mpi_banner("train", omp_get_max_threads());
  hn_log_info("config %s, run folder %s", config_path, dir);
  hn_train_result res;
  status = hn_train(&cfg, dir, &res);
  if (status == HN_ESTOPPED) {
    hn_log_info("stopped after %ld steps; checkpoint in %s. Run the same command again to resume.", res.steps, dir);
    return HN_EXIT_RESUME;
  }
  if (status != HN_OK)
    return hn_cli_fail(status);
  if (res.val_accuracy == res.val_accuracy)
    hn_log_info("finished: %d epochs, %ld steps in %.1f s | train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | "
                "run folder %s", res.epochs_done, res.steps, res.seconds, res.train_loss, 100 * res.train_accuracy,
                res.val_loss, 100 * res.val_accuracy, dir);
  else
    hn_log_info("finished: %d epochs, %ld steps in %.1f s | train loss %.4f acc %.2f%% | run folder %s",
                res.epochs_done, res.steps, res.seconds, res.train_loss, 100 * res.train_accuracy, dir);
  return HN_EXIT_OK;
}
