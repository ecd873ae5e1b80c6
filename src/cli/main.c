/* main.c - the `hamnet` command: start MPI, dispatch to a subcommand, map status to exit code. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hamnet/build_info.h"
#include "hamnet/error.h"
#include "hamnet/kernels.h" /* HN_TILE */
#include "hamnet/parallel.h"
#include "hamnet/real.h"
#include "hamnet/train.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"train", hn_cmd_train, "train a network from an INI config (resumes from checkpoints)"},
    {"eval", hn_cmd_eval, "loss and accuracy of a checkpoint on a data set"},
    {"datagen", hn_cmd_datagen, "generate a synthetic data set (ellipses, swissroll, peaks)"},
    {"import", hn_cmd_import, "convert CSV or IDX (MNIST-style) data to hamnet's HDF5 format"},
    {"inspect", hn_cmd_inspect, "summarise any hamnet file (data set, checkpoint, diagnostics)"},
    {"bench", hn_cmd_bench, "time training steps and compare with the GEMM roofline"},
};
#define N_SUBCOMMANDS (int)(sizeof subcommands / sizeof subcommands[0])

static void print_usage(FILE *out) {
  fprintf(out,
          "hamnet %s (%s, %s precision) - stable deep networks (Hamiltonian, leapfrog) on MPI + OpenMP\n\n"
          "Usage: hamnet COMMAND [options]      (under mpirun/srun for several ranks)\n\n"
          "Commands:\n",
          HN_VERSION, HN_GIT_HASH, HN_REAL_NAME);
  for (int i = 0; i < N_SUBCOMMANDS; i++)
    fprintf(out, "  %-9s %s\n", subcommands[i].name, subcommands[i].summary);
  fprintf(out, "\n'hamnet COMMAND --help' describes a command. Exit codes: 0 ok, 1 error, 2 usage or\n"
               "config error, 3 diverged (non-finite loss), 75 stopped by a signal after a checkpoint\n"
               "(resume by running the same command again).\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return HN_EXIT_USAGE;
  }
  if (hn_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
    print_usage(stdout);
    return HN_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("hamnet %s (%s) %s precision, narrow tiles of %d samples\n", HN_VERSION, HN_GIT_HASH, HN_REAL_NAME, HN_TILE);
    return HN_EXIT_OK;
  }
  const subcommand *cmd = NULL;
  for (int i = 0; i < N_SUBCOMMANDS; i++)
    if (strcmp(argv[1], subcommands[i].name) == 0)
      cmd = &subcommands[i];
  if (!cmd) {
    fprintf(stderr, "hamnet: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return HN_EXIT_USAGE;
  }
  /* Catch the stop signals before MPI starts and the data loads, so that a SIGUSR1 sent by a
   * batch system early in the run is a stop request (honoured at the first step boundary), not
   * the default action that kills the process. */
  if (cmd->run == hn_cmd_train)
    hn_signals_install();
  int status = hn_mpi_init(&argc, &argv, NULL);
  if (status != HN_OK)
    return hn_cli_fail(status);
  int code = cmd->run(argc - 1, argv + 1);
  /* A rank that fails alone must not wait forever in MPI_Finalize: see hn_mpi_exit. */
  return hn_mpi_exit(code);
}
