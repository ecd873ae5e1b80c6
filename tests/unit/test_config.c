/* test_config.c - the configuration: defaults, files, every error path, --set, validation,
 * path resolution, the INI writer's round trip and the key table. Fixture files are written
 * into a fresh temporary folder that is removed at the end. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hamnet/config.h"
#include "hamnet/error.h"
#include "hn_test.h"

static char tmpdir[256];
static char written[64][512];
static int n_written = 0;

/* Write `text` to tmpdir/name; returns the full path (static storage per file). */
static const char *fixture(const char *name, const char *text) {
  if (n_written >= 64)
    return "/nonexistent";
  char *path = written[n_written++];
  snprintf(path, 512, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL, "cannot create fixture %s: %s", path, strerror(errno));
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  return path;
}

static int mkdir_p_ok(const char *dir) { return mkdir(dir, 0700) == 0 || errno == EEXIST; }

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* Load text from a fixture file and expect failure with every one of the fragments (NULL-ended)
 * in the message. */
static void expect_file_error(const char *name, const char *text, int status, const char *const *frags) {
  hn_config cfg;
  hn_config_defaults(&cfg);
  hn_config before = cfg;
  const char *path = fixture(name, text);
  hn_error_clear();
  int s = hn_config_load(&cfg, path);
  CHECK(s == status, "%s: status %d, expected %d (%s)", name, s, status, hn_errmsg());
  CHECK(contains(hn_errmsg(), path), "%s: message names the file: %s", name, hn_errmsg());
  for (const char *const *f = frags; *f; f++)
    CHECK(contains(hn_errmsg(), *f), "%s: message lacks '%s': %s", name, *f, hn_errmsg());
  CHECK(hn_config_diff(&before, &cfg, NULL) == 0 && strcmp(before.source, cfg.source) == 0,
        "%s: a failed load leaves the config unchanged", name);
}

static void expect_set_error(const char *arg, const char *const *frags) {
  hn_config cfg;
  hn_config_defaults(&cfg);
  hn_config before = cfg;
  hn_error_clear();
  int s = hn_config_set(&cfg, arg);
  CHECK(s == HN_EINVAL, "--set %s: status %d (%s)", arg, s, hn_errmsg());
  char prefix[512];
  snprintf(prefix, sizeof prefix, "--set %s: ", arg);
  CHECK(strncmp(hn_errmsg(), prefix, strlen(prefix)) == 0, "message starts with '%s': %s", prefix,
        hn_errmsg());
  for (const char *const *f = frags; *f; f++)
    CHECK(contains(hn_errmsg(), *f), "--set %s: message lacks '%s': %s", arg, *f, hn_errmsg());
  CHECK(hn_config_diff(&before, &cfg, NULL) == 0, "--set %s: a failed set leaves the config unchanged", arg);
}

static void expect_invalid(const hn_config *cfg, int for_training, const char *const *frags) {
  hn_error_clear();
  int s = hn_config_validate(cfg, for_training);
  CHECK(s == HN_EINVAL, "validate: status %d (%s)", s, hn_errmsg());
  for (const char *const *f = frags; *f; f++)
    CHECK(contains(hn_errmsg(), *f), "validate: message lacks '%s': %s", *f, hn_errmsg());
}

#define FRAGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void) {
  hn_config c;
  memset(&c, 0x5a, sizeof c);
  hn_config_defaults(&c);
  CHECK(c.data.train[0] == '\0' && c.data.val[0] == '\0' && c.source[0] == '\0', "empty paths");
  CHECK(c.data.fraction == 1.0, "fraction %g", c.data.fraction);
  CHECK(c.model.arch == HN_ARCH_HAMILTONIAN, "arch %d", c.model.arch);
  CHECK(c.model.width == 8 && c.model.depth == 64, "width %d depth %d", c.model.width, c.model.depth);
  CHECK(c.model.final_time == 5.0 && c.model.gamma == 0.01, "T %g gamma %g", c.model.final_time,
        c.model.gamma);
  CHECK(c.model.activation == HN_ACT_TANH && c.model.opening == HN_OPEN_PAD, "activation, opening");
  CHECK(c.train.epochs == 50 && c.train.batch_size == 64, "epochs %d batch %d", c.train.epochs,
        c.train.batch_size);
  CHECK(c.train.optimizer == HN_OPT_ADAM && c.train.lr == 0.01, "optimizer %d lr %g", c.train.optimizer,
        c.train.lr);
  CHECK(c.train.momentum == 0.9 && c.train.nesterov == 0, "sgd defaults");
  CHECK(c.train.beta1 == 0.9 && c.train.beta2 == 0.999 && c.train.adam_eps == 1e-8, "adam defaults");
  CHECK(c.train.lr_schedule == HN_SCHED_CONSTANT && c.train.lr_step_epochs == 10 &&
            c.train.lr_step_factor == 0.5 && c.train.lr_min == 0.0,
        "schedule defaults");
  CHECK(c.train.alpha_t == 1e-6 && c.train.alpha_w == 1e-4, "regularization defaults");
  CHECK(c.train.levels == 1 && c.train.seed == 1 && c.train.init_scale == 1.0, "levels, seed, init_scale");
  CHECK(c.train.reversible == HN_REV_AUTO && c.train.reversible_tol == 1e-3 &&
            c.train.reversible_stride == 16,
        "reversible defaults");
  CHECK(c.train.threads == 0 && c.train.max_steps == 0, "threads, max_steps");
  CHECK(c.checkpoint.every_epochs == 1 && c.checkpoint.every_steps == 0 && c.checkpoint.keep == 3 &&
            c.checkpoint.best == 1,
        "checkpoint defaults");
  CHECK(c.diagnostics.every_epochs == 1 && c.diagnostics.spectra == 1 && c.diagnostics.band_low == 1e-3 &&
            c.diagnostics.band_high == 1e3,
        "diagnostics defaults");
  CHECK(c.parallel.bucket_kb == 1024 && c.parallel.overlap == 1, "parallel defaults");
  CHECK_OK(hn_config_validate(&c, 0));
  expect_invalid(&c, 1, FRAGS("missing required key [data] train in"));

  hn_model_spec s = hn_config_model_spec(&c);
  CHECK(s.arch == HN_ARCH_HAMILTONIAN && s.width == 8 && s.depth == 64 && s.final_time == 5.0 &&
            s.gamma == 0.01 && s.n_features == 0 && s.n_classes == 0 && s.activation == HN_ACT_TANH &&
            s.opening == HN_OPEN_PAD,
        "model spec");
  CHECK(strcmp(hn_optimizer_name(HN_OPT_SGD), "sgd") == 0 &&
            strcmp(hn_optimizer_name(HN_OPT_ADAM), "adam") == 0,
        "optimizer names");
  CHECK(strcmp(hn_schedule_name(HN_SCHED_COSINE), "cosine") == 0 &&
            strcmp(hn_schedule_name((hn_schedule_kind)9), "?") == 0,
        "schedule names");
  CHECK(strcmp(hn_reversible_name(HN_REV_OFF), "off") == 0, "reversible names");

  char buf[64];
  CHECK_OK(hn_config_get(&c, "train.lr", buf, sizeof buf));
  CHECK(strcmp(buf, "0.01") == 0, "get train.lr: %s", buf);
  CHECK_OK(hn_config_get(&c, "model.arch", buf, sizeof buf));
  CHECK(strcmp(buf, "hamiltonian") == 0, "get model.arch: %s", buf);
  CHECK(hn_config_get(&c, "train.nope", buf, sizeof buf) == HN_EINVAL, "get unknown key");
  CHECK(hn_config_get(&c, "model.arch", buf, 4) == HN_EINVAL, "get: buffer too small");
}

/* clang-format off */
static const char *full_ini =
    "; a complete configuration, every key set to a non-default value\n"
    "# both comment styles\n"
    "[data]\n"
    "train = data/train.h5\n"
    "val = /abs/val.h5\n"
    "fraction = 0.5\n"
    "\n"
    "[model]\n"
    "arch = leapfrog\n"
    "width = 16\n"
    "depth = 128   ; inline comment\n"
    "final_time = 20\n"
    "activation = relu\n"
    "gamma = 0.25\n"
    "opening = dense\n"
    "[train]\n"
    "epochs = 7\n"
    "batch_size = 256\n"
    "optimizer = sgd\n"
    "lr = 0.1\n"
    "momentum = 0.5\n"
    "nesterov = yes\n"
    "beta1 = 0.8\n"
    "beta2 = 0.99\n"
    "adam_eps = 1e-6\n"
    "lr_schedule = cosine\n"
    "lr_step_epochs = 3\n"
    "lr_step_factor = 0.25\n"
    "lr_min = 1e-5\n"
    "alpha_t = 0\n"
    "alpha_w = 2.5e-3\n"
    "levels = 3\n"
    "seed = 18446744073709551615\n"
    "init_scale = 0.5\n"
    "reversible = on\n"
    "reversible_tol = 1e-6\n"
    "reversible_stride = 4\n"
    "threads = 2\n"
    "max_steps = 9000000000\n"
    "[checkpoint]\n"
    "every_epochs = 0\n"
    "every_steps = 500\n"
    "keep = 1\n"
    "best = off\n"
    "[ diagnostics ]\n"
    "every_epochs = 5\n"
    "spectra = FALSE\n"
    "band_low = 0.5\n"
    "band_high = 2\n"
    "[parallel]\n"
    "bucket_kb = 64\n"
    "overlap = 0\n";
/* clang-format on */

static void test_full_file(void) {
  hn_config c;
  hn_config_defaults(&c);
  const char *path = fixture("full.ini", full_ini);
  CHECK_OK(hn_config_load(&c, path));
  char expect[600];
  snprintf(expect, sizeof expect, "%s/data/train.h5", tmpdir);
  CHECK(strcmp(c.data.train, expect) == 0, "train resolved against the file's folder: %s", c.data.train);
  CHECK(strcmp(c.data.val, "/abs/val.h5") == 0, "absolute path kept: %s", c.data.val);
  CHECK(c.data.fraction == 0.5, "fraction");
  CHECK(c.model.arch == HN_ARCH_LEAPFROG && c.model.width == 16 && c.model.depth == 128, "model sizes");
  CHECK(c.model.final_time == 20.0 && c.model.activation == HN_ACT_RELU && c.model.gamma == 0.25 &&
            c.model.opening == HN_OPEN_DENSE,
        "model rest");
  CHECK(c.train.epochs == 7 && c.train.batch_size == 256 && c.train.optimizer == HN_OPT_SGD &&
            c.train.lr == 0.1,
        "train basics");
  CHECK(c.train.momentum == 0.5 && c.train.nesterov == 1 && c.train.beta1 == 0.8 && c.train.beta2 == 0.99 &&
            c.train.adam_eps == 1e-6,
        "optimizer parameters");
  CHECK(c.train.lr_schedule == HN_SCHED_COSINE && c.train.lr_step_epochs == 3 &&
            c.train.lr_step_factor == 0.25 && c.train.lr_min == 1e-5,
        "schedule");
  CHECK(c.train.alpha_t == 0.0 && c.train.alpha_w == 2.5e-3 && c.train.levels == 3, "alpha, levels");
  CHECK(c.train.seed == UINT64_MAX, "seed %llu", (unsigned long long)c.train.seed);
  CHECK(c.train.init_scale == 0.5 && c.train.reversible == HN_REV_ON && c.train.reversible_tol == 1e-6 &&
            c.train.reversible_stride == 4 && c.train.threads == 2,
        "train rest");
  CHECK(c.train.max_steps == 9000000000L, "max_steps %ld", c.train.max_steps);
  CHECK(c.checkpoint.every_epochs == 0 && c.checkpoint.every_steps == 500 && c.checkpoint.keep == 1 &&
            c.checkpoint.best == 0,
        "checkpoint");
  CHECK(c.diagnostics.every_epochs == 5 && c.diagnostics.spectra == 0 && c.diagnostics.band_low == 0.5 &&
            c.diagnostics.band_high == 2.0,
        "diagnostics (section name with spaces)");
  CHECK(c.parallel.bucket_kb == 64 && c.parallel.overlap == 0, "parallel");
  CHECK(strcmp(c.source, path) == 0, "source %s", c.source);
  CHECK_OK(hn_config_validate(&c, 1));

  /* A partial file changes only its keys. */
  hn_config d;
  hn_config_defaults(&d);
  CHECK_OK(hn_config_load(&d, fixture("partial.ini", "[train]\nlr = 0.5\n")));
  hn_config e;
  hn_config_defaults(&e);
  e.train.lr = 0.5;
  CHECK(hn_config_diff(&d, &e, stderr) == 0, "partial file: only train.lr differs from the defaults");

  /* Quotes, CRLF line ends, a UTF-8 byte order mark. */
  hn_config_defaults(&d);
  CHECK_OK(hn_config_load(&d, fixture("crlf.ini", "\xEF\xBB\xBF[model]\r\narch = \"resnet\"\r\nwidth=4\r\n"
                                                  "[data]\r\ntrain = \"/q/x y.h5\"\r\n")));
  CHECK(d.model.arch == HN_ARCH_RESNET && d.model.width == 4, "BOM, CRLF, quoted enum");
  CHECK(strcmp(d.data.train, "/q/x y.h5") == 0, "quoted path with a space: %s", d.data.train);

  /* An empty file is fine (everything stays as it was). */
  hn_config_defaults(&d);
  CHECK_OK(hn_config_load(&d, fixture("empty.ini", "")));
  hn_config_defaults(&e);
  CHECK(hn_config_diff(&d, &e, stderr) == 0, "empty file");
}

static void test_file_errors(void) {
  expect_file_error(
      "section.ini", "[model]\nwidth = 8\n[modle]\ndepth = 4\n", HN_EINVAL,
      FRAGS(":4: [modle] depth = 4: unknown section [modle] (did you mean [model]?);",
            "allowed sections: [data], [model], [train], [checkpoint], [diagnostics], [parallel]"));
  expect_file_error(
      "nosection.ini", "lr = 0.1\n", HN_EINVAL,
      FRAGS(":1: lr = 0.1: key outside any section", "'lr' is a key of [train]", "allowed sections:"));
  expect_file_error("key.ini", "[model]\n\nwidht = 8\n", HN_EINVAL,
                    FRAGS(":3: [model] widht = 8: unknown key 'widht' in [model]", "did you mean 'width'?",
                          "allowed: arch, width, depth, final_time, activation, gamma, opening"));
  expect_file_error("key2.ini", "[model]\nlr = 0.1\n", HN_EINVAL,
                    FRAGS(":2: [model] lr = 0.1: unknown key 'lr' in [model]", "'lr' is a key of [train]"));
  expect_file_error("key3.ini", "[train]\nzzzzzz = 1\n", HN_EINVAL,
                    FRAGS(":2: [train] zzzzzz = 1: unknown key"));
  {
    /* No far-fetched suggestion. */
    CHECK(!contains(hn_errmsg(), "did you mean"), "no suggestion for zzzzzz: %s", hn_errmsg());
  }
  expect_file_error("enum.ini", "[model]\narch = hamiltonain\n", HN_EINVAL,
                    FRAGS(":2: [model] arch = hamiltonain: unknown name (did you mean 'hamiltonian'?)",
                          "allowed: one of: resnet, antisym, hamiltonian, leapfrog"));
  expect_file_error("enum2.ini", "[train]\noptimizer = rmsprop\n", HN_EINVAL,
                    FRAGS("[train] optimizer = rmsprop: unknown name; allowed: one of: sgd, adam"));
  expect_file_error("int.ini", "[model]\nwidth = 8.5\n", HN_EINVAL,
                    FRAGS(":2: [model] width = 8.5: not an integer; allowed: integer 1..65536"));
  expect_file_error("int2.ini", "[model]\nwidth = 8 # eight\n", HN_EINVAL,
                    FRAGS("not an integer", "'#' starts a comment only at the beginning of a line"));
  expect_file_error("int3.ini", "[train]\nepochs = 99999999999\n", HN_EINVAL,
                    FRAGS("[train] epochs = 99999999999: out of range; allowed: integer >= 1"));
  expect_file_error("range.ini", "[model]\ndepth = 0\n", HN_EINVAL,
                    FRAGS(":2: [model] depth = 0: out of range; allowed: integer 1..1000000"));
  expect_file_error("range2.ini", "[data]\nfraction = 1.5\n", HN_EINVAL,
                    FRAGS("[data] fraction = 1.5: out of range; allowed: real number in (0, 1]"));
  expect_file_error("range3.ini", "[data]\nfraction = 0\n", HN_EINVAL, FRAGS("fraction = 0: out of range"));
  expect_file_error("range4.ini", "[train]\nmomentum = 1\n", HN_EINVAL,
                    FRAGS("momentum = 1: out of range; allowed: real number in [0, 1)"));
  expect_file_error("range5.ini", "[train]\nlr = -0.1\n", HN_EINVAL,
                    FRAGS("lr = -0.1: out of range; allowed: real number > 0"));
  expect_file_error("inf.ini", "[train]\nlr = inf\n", HN_EINVAL,
                    FRAGS(":2: [train] lr = inf: not a finite number"));
  expect_file_error("nan.ini", "[train]\nlr = nan\n", HN_EINVAL,
                    FRAGS("[train] lr = nan: not a finite number"));
  expect_file_error("huge.ini", "[train]\nlr = 1e400\n", HN_EINVAL,
                    FRAGS("[train] lr = 1e400: not a finite number"));
  expect_file_error("num.ini", "[train]\nlr = 0.1x\n", HN_EINVAL, FRAGS("[train] lr = 0.1x: not a number"));
  expect_file_error("emptyval.ini", "[train]\nlr =\n", HN_EINVAL, FRAGS("[train] lr = : empty value"));
  expect_file_error(
      "bool.ini", "[train]\nnesterov = maybe\n", HN_EINVAL,
      FRAGS("[train] nesterov = maybe: not a boolean; allowed: 0/1, true/false, yes/no, on/off"));
  expect_file_error("seed.ini", "[train]\nseed = -1\n", HN_EINVAL, FRAGS("[train] seed = -1: out of range"));
  expect_file_error(
      "seed2.ini", "[train]\nseed = 18446744073709551616\n", HN_EINVAL,
      FRAGS("seed = 18446744073709551616: out of range; allowed: integer 0..18446744073709551615"));
  expect_file_error("dup.ini", "[train]\nlr = 0.1\nepochs = 3\n[model]\nwidth = 4\n[train]\nlr = 0.2\n",
                    HN_EINVAL, FRAGS(":7: [train] lr = 0.2: duplicate key (already set on line 2)"));
  expect_file_error("syntax.ini", "[model]\nwidth = 8\ndepth 64\n", HN_EINVAL,
                    FRAGS(":3: syntax error: 'depth 64' is not a [section] header or key = value line"));
  expect_file_error("syntax2.ini", "[model\nwidth = 8\n", HN_EINVAL,
                    FRAGS(":1: syntax error: '[model' has no closing ']'"));
  /* Only the first error is reported, whether it is a syntax error or a bad value. */
  expect_file_error("first1.ini", "[model]\nwidth = 8\noops\nwidth = 0\ndepth = x\n", HN_EINVAL,
                    FRAGS(":3: syntax error: 'oops'"));
  CHECK(!contains(hn_errmsg(), "depth") && !contains(hn_errmsg(), ":4:"), "first error only: %s",
        hn_errmsg());
  expect_file_error("first2.ini", "[model]\nwidth = 0\noops\ndepth = x\n", HN_EINVAL,
                    FRAGS(":2: [model] width = 0: out of range"));
  CHECK(!contains(hn_errmsg(), "oops") && !contains(hn_errmsg(), "depth"), "first error only: %s",
        hn_errmsg());
  /* An indented line would silently continue the previous value in libinih. */
  expect_file_error("indent.ini", "[model]\nwidth = 8\n  depth = 64\n", HN_EINVAL,
                    FRAGS(":3: syntax error: indented line 'depth = 64' would continue the value of 'width'",
                          "remove the leading whitespace"));

  /* Missing file: I/O error with the path and the system's reason. */
  hn_config c;
  hn_config_defaults(&c);
  char missing[600];
  snprintf(missing, sizeof missing, "%s/no-such.ini", tmpdir);
  CHECK(hn_config_load(&c, missing) == HN_EIO, "missing file is an I/O error");
  CHECK(contains(hn_errmsg(), missing) && contains(hn_errmsg(), strerror(ENOENT)), "message: %s",
        hn_errmsg());
  CHECK(hn_config_load(&c, tmpdir) == HN_EIO, "a folder is an I/O error: %s", hn_errmsg());
  CHECK(contains(hn_errmsg(), tmpdir), "message names the folder: %s", hn_errmsg());

  /* Labels of text parsed from memory. */
  hn_config_defaults(&c);
  CHECK(hn_config_load_string(&c, "[train]\n\nlr = x\n", "ckpt.h5 (stored config)") == HN_EINVAL,
        "string error");
  CHECK(contains(hn_errmsg(), "ckpt.h5 (stored config):3: [train] lr = x: not a number"), "label: %s",
        hn_errmsg());
}

static void test_set(void) {
  hn_config c;
  hn_config_defaults(&c);
  CHECK_OK(hn_config_load(&c, fixture("base.ini", "[train]\nlr = 0.1\nepochs = 3\n[data]\ntrain = t.h5\n")));
  CHECK(c.train.lr == 0.1, "file value");
  CHECK_OK(hn_config_set(&c, "train.lr=0.02"));
  CHECK(c.train.lr == 0.02 && c.train.epochs == 3, "--set overrides the file value only");
  CHECK_OK(hn_config_set(&c, " model.arch = resnet "));
  CHECK(c.model.arch == HN_ARCH_RESNET, "--set with spaces");
  CHECK_OK(hn_config_set(&c, "train.lr=0.03"));
  CHECK(c.train.lr == 0.03, "a later --set wins");

  char cwd[512], expect[1100];
  CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
  CHECK_OK(hn_config_set(&c, "data.val=./sub//v.h5"));
  snprintf(expect, sizeof expect, "%s/sub/v.h5", cwd);
  CHECK(strcmp(c.data.val, expect) == 0, "--set path relative to the current directory: %s", c.data.val);
  CHECK_OK(hn_config_set(&c, "data.val=/x/./y.h5"));
  CHECK(strcmp(c.data.val, "/x/./y.h5") == 0, "--set absolute path kept: %s", c.data.val);
  CHECK_OK(hn_config_set(&c, "data.val="));
  CHECK(c.data.val[0] == '\0', "--set empty path clears it");
  snprintf(expect, sizeof expect, "%s/t.h5", tmpdir);
  CHECK(strcmp(c.data.train, expect) == 0, "file path still relative to the file: %s", c.data.train);

  expect_set_error("train.lr", FRAGS("expected section.key=value"));
  expect_set_error("trainlr=0.1", FRAGS("expected section.key=value"));
  expect_set_error("lr=0.1.5", FRAGS("expected section.key=value"));
  expect_set_error(".lr=0.1", FRAGS("expected section.key=value"));
  expect_set_error("train.=0.1", FRAGS("expected section.key=value"));
  expect_set_error("", FRAGS("expected section.key=value"));
  expect_set_error("train.lr=abc", FRAGS("[train] lr = abc: not a number; allowed: real number > 0"));
  expect_set_error("train.lr=", FRAGS("[train] lr = : empty value"));
  expect_set_error("trian.lr=0.1", FRAGS("unknown section [trian]", "did you mean [train]?"));
  expect_set_error("train.lrr=0.1", FRAGS("unknown key 'lrr' in [train]", "did you mean 'lr'?"));
  expect_set_error("model.depth=-3", FRAGS("[model] depth = -3: out of range"));
  expect_set_error("data.train=a ;b", FRAGS("contains ' ;'"));
  expect_set_error("data.train=a\nb", FRAGS("control character"));
  CHECK(hn_config_set(&c, NULL) == HN_EINVAL, "NULL assignment");
}

static void test_validate(void) {
  hn_config c;
  hn_config_defaults(&c);
  snprintf(c.source, sizeof c.source, "%s", "job.ini");
  expect_invalid(&c, 1, FRAGS("missing required key [data] train in job.ini"));
  snprintf(c.data.train, sizeof c.data.train, "%s", "/d/train.h5");
  CHECK_OK(hn_config_validate(&c, 1));

  c.train.levels = 3; /* 64 = 16 * 4 */
  CHECK_OK(hn_config_validate(&c, 1));
  c.train.levels = 7; /* 64 / 64 = 1 */
  CHECK_OK(hn_config_validate(&c, 1));
  c.train.levels = 8;
  expect_invalid(&c, 1,
                 FRAGS("job.ini: [train] levels = 8", "model.depth = 64", "2^(levels-1) = 128",
                       "allowed: levels 1..7 for depth 64"));
  c.model.depth = 6;
  c.train.levels = 2;
  CHECK_OK(hn_config_validate(&c, 1));
  c.train.levels = 3;
  expect_invalid(&c, 1,
                 FRAGS("[train] levels = 3", "model.depth = 6 must be divisible by 2^(levels-1) = 4",
                       "allowed: levels 1..2 for depth 6"));
  hn_config_defaults(&c);

  c.train.lr_min = 0.5;
  expect_invalid(&c, 0, FRAGS("[train] lr_min = 0.5: larger than train.lr = 0.01"));
  c.train.lr_min = 0.01;
  CHECK_OK(hn_config_validate(&c, 0));
  hn_config_defaults(&c);

  c.diagnostics.band_low = 2;
  c.diagnostics.band_high = 2;
  expect_invalid(&c, 0, FRAGS("[diagnostics] band_low = 2: not below diagnostics.band_high = 2"));
  hn_config_defaults(&c);

  c.train.reversible = HN_REV_ON;
  c.model.arch = HN_ARCH_RESNET;
  expect_invalid(&c, 0, FRAGS("[train] reversible = on", "model.arch = resnet"));
  c.model.arch = HN_ARCH_HAMILTONIAN;
  CHECK_OK(hn_config_validate(&c, 0));
  hn_config_defaults(&c);

  /* Values set by code get the same range checks as values read from a file. */
  c.model.width = 0;
  expect_invalid(&c, 0, FRAGS("[model] width = 0: out of range; allowed: integer 1..65536"));
  hn_config_defaults(&c);
  c.train.lr = NAN;
  expect_invalid(&c, 0, FRAGS("[train] lr = nan: not a finite number"));
  hn_config_defaults(&c);
  c.model.activation = (hn_activation)7;
  expect_invalid(&c, 0, FRAGS("[model] activation = 7: unknown value; allowed: one of: tanh, relu"));
  hn_config_defaults(&c);
  c.train.nesterov = 2;
  expect_invalid(&c, 0, FRAGS("[train] nesterov = 2: out of range"));
  hn_config_defaults(&c);
  CHECK_OK(hn_config_validate(&c, 0));
  expect_invalid(
      &c, 1, FRAGS("missing required key [data] train in the configuration; set it", "--set data.train="));
}

static void test_paths(void) {
  hn_config c;
  hn_config_defaults(&c);
  /* A file in a sub-folder, loaded by a relative name: paths resolve against its folder and
   * come out absolute. */
  char sub[600], path[700], expect[1200], old[512];
  snprintf(sub, sizeof sub, "%s/jobs", tmpdir);
  CHECK(mkdir_p_ok(sub), "mkdir %s", sub);
  snprintf(path, sizeof path, "%s/jobs/rel.ini", tmpdir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "create %s", path);
  if (!f)
    return;
  fputs("[data]\ntrain = ../data/./train.h5\nval = ./v.h5\n", f);
  fclose(f);
  CHECK(getcwd(old, sizeof old) != NULL, "getcwd");
  CHECK(chdir(tmpdir) == 0, "chdir %s", tmpdir);
  CHECK_OK(hn_config_load(&c, "jobs/rel.ini"));
  CHECK(chdir(old) == 0, "chdir back");
  snprintf(expect, sizeof expect, "%s/jobs/../data/train.h5", tmpdir);
  CHECK(strcmp(c.data.train, expect) == 0, "train: %s (expected %s)", c.data.train, expect);
  snprintf(expect, sizeof expect, "%s/jobs/v.h5", tmpdir);
  CHECK(strcmp(c.data.val, expect) == 0, "val: %s", c.data.val);
  CHECK(strcmp(c.source, "jobs/rel.ini") == 0, "source as given: %s", c.source);
  remove(path);
  rmdir(sub);

  /* Text from memory keeps paths as written. */
  hn_config_defaults(&c);
  CHECK_OK(hn_config_load_string(&c, "[data]\ntrain = ./x/t.h5\n", "mem"));
  CHECK(strcmp(c.data.train, "./x/t.h5") == 0, "string path kept: %s", c.data.train);
  CHECK(strcmp(c.source, "mem") == 0, "source = label");

  /* A line far longer than libinih's line buffer (200) is read whole. */
  char longname[700];
  memset(longname, 'p', 600);
  longname[600] = '\0';
  char text[1000];
  snprintf(text, sizeof text, "[data]\ntrain = /%s/train.h5   ; comment\nval = v.h5\n[model]\nwidth = 3\n",
           longname);
  hn_config_defaults(&c);
  CHECK_OK(hn_config_load(&c, fixture("long.ini", text)));
  snprintf(expect, sizeof expect, "/%s/train.h5", longname);
  CHECK(strcmp(c.data.train, expect) == 0, "long line: %.40s... (%zu chars)", c.data.train,
        strlen(c.data.train));
  CHECK(c.model.width == 3, "line numbers stay right after a long line");
  snprintf(expect, sizeof expect, "%s/v.h5", tmpdir);
  CHECK(strcmp(c.data.val, expect) == 0, "val after long line: %s", c.data.val);
  snprintf(text, sizeof text, "[data]\ntrain = /%s\n[model]\nwidth = x\n", longname);
  hn_config_defaults(&c);
  CHECK(hn_config_load(&c, fixture("long2.ini", text)) == HN_EINVAL, "error after a long line");
  CHECK(contains(hn_errmsg(), "long2.ini:4: [model] width = x"), "line number after a long line: %s",
        hn_errmsg());

  /* Too long for HN_PATH_MAX. */
  char toolong[1200];
  memset(toolong, 'q', 1100);
  toolong[1100] = '\0';
  char arg[1300];
  snprintf(arg, sizeof arg, "data.train=/%s", toolong);
  hn_config_defaults(&c);
  CHECK(hn_config_set(&c, arg) == HN_EINVAL, "path over HN_PATH_MAX");
  CHECK(contains(hn_errmsg(), "path too long") && contains(hn_errmsg(), "qqq...: path too long") &&
            strlen(hn_errmsg()) < 1000,
        "message: %s", hn_errmsg());
}

static void test_round_trip(void) {
  hn_config a, b;
  hn_config_defaults(&a);
  char *ini = hn_config_to_ini(&a);
  CHECK(ini != NULL, "to_ini");
  if (!ini)
    return;
  CHECK(contains(ini, "[data]\ntrain = \nval = \nfraction = 1\n\n[model]\narch = hamiltonian\n"),
        "layout:\n%s", ini);
  CHECK(contains(ini, "\nlr = 0.01\n") && contains(ini, "\nadam_eps = 1e-8\n") &&
            contains(ini, "\nband_high = 1e3\n") && contains(ini, "\nnesterov = 0\n"),
        "values:\n%s", ini);
  memset(&b, 0x11, sizeof b);
  hn_config_defaults(&b);
  b.train.lr = 0.7; /* overwritten by the text */
  CHECK_OK(hn_config_load_string(&b, ini, "defaults"));
  CHECK(hn_config_diff(&a, &b, stderr) == 0, "defaults survive the round trip");
  free(ini);

  /* Awkward values: doubles that need 17 digits, extremes, a long path, a quoted path. */
  hn_config_defaults(&a);
  const char *path = fixture("rt.ini", full_ini);
  CHECK_OK(hn_config_load(&a, path));
  a.train.lr = 0.1 + 0.2;
  a.train.lr_min = 1.0 / 3.0;
  a.model.final_time = 1e300;
  a.model.gamma = -0.0;
  a.train.alpha_w = 5e-324; /* subnormal */
  a.train.init_scale = 2.0 / 3.0;
  a.diagnostics.band_high = 1.7976931348623157e308;
  a.train.seed = 0x123456789abcdef0ull;
  a.train.max_steps = LONG_MAX;
  memset(a.data.train, 'z', HN_PATH_MAX - 1);
  a.data.train[0] = '/';
  a.data.train[HN_PATH_MAX - 1] = '\0';
  snprintf(a.data.val, sizeof a.data.val, "%s", "\"/quoted name\"");
  ini = hn_config_to_ini(&a);
  CHECK(ini != NULL, "to_ini");
  if (!ini)
    return;
  hn_config_defaults(&b);
  CHECK_OK(hn_config_load_string(&b, ini, a.source));
  CHECK(hn_config_diff(&a, &b, stderr) == 0, "every key survives the round trip");
  CHECK(signbit(b.model.gamma) && b.train.alpha_w == 5e-324 && b.train.lr == 0.1 + 0.2, "exact doubles");
  CHECK(strcmp(a.data.train, b.data.train) == 0 && strcmp(a.data.val, b.data.val) == 0, "paths");
  CHECK(strcmp(b.source, a.source) == 0, "source = label");
  char *again = hn_config_to_ini(&b);
  CHECK(again && strcmp(again, ini) == 0, "writing the reread config gives the same text");
  free(again);
  free(ini);

  /* Every key appears once, in table order: the written text of a config loaded from a file
   * lists as many lines as the key table has rows. */
  char *mem = NULL;
  size_t memlen = 0;
  FILE *out = open_memstream(&mem, &memlen);
  CHECK(out != NULL, "open_memstream");
  if (!out)
    return;
  hn_config_print_keys(out);
  fclose(out);
  int rows = 0;
  for (const char *p = mem; (p = strstr(p, "\n| `[")) != NULL; p++)
    rows++;
  hn_config_defaults(&a);
  ini = hn_config_to_ini(&a);
  int keys = 0;
  for (const char *p = ini; p && *p; p++)
    if (*p == '=')
      keys++;
  CHECK(rows == keys && rows == 52, "print_keys rows %d, to_ini keys %d (expected 52)", rows, keys);
  CHECK(strncmp(mem, "| Section | Key | Default | Allowed | Meaning |\n|---|---|---|---|---|\n", 69) == 0,
        "table header:\n%.200s", mem);
  CHECK(contains(mem, "| `[train]` | `lr` | `0.01` | real number > 0 |"), "lr row");
  CHECK(contains(mem, "| `[data]` | `train` | `(required)` |"), "train row");
  CHECK(contains(mem,
                 "| `[model]` | `arch` | `hamiltonian` | one of: resnet, antisym, hamiltonian, leapfrog |"),
        "arch row");
  free(ini);
  free(mem);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s", "/tmp/hn_test_config_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  test_defaults();
  test_full_file();
  test_file_errors();
  test_set();
  test_validate();
  test_paths();
  test_round_trip();
  for (int i = 0; i < n_written; i++)
    remove(written[i]);
  CHECK(rmdir(tmpdir) == 0, "temporary folder %s removed: %s", tmpdir, strerror(errno));
  return hn_test_finish("test_config");
}
