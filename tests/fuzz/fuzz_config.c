/* fuzz_config.c - libFuzzer harness for the INI config parser (hn_config_load_string).
 * Invariants: the parser never crashes; every refusal has a message; a config it accepts
 * survives the round trip through hn_config_to_ini (that text is what checkpoints store and
 * what resuming parses again) with every key unchanged; hn_config_validate and
 * hn_config_model_spec never crash on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "hamnet/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init();
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  hn_config cfg;
  hn_config_defaults(&cfg);
  int status = hn_config_load_string(&cfg, text, "fuzz.ini");
  fuzz_check_error(status, "hn_config_load_string");
  if (status == HN_OK) {
    fuzz_check_error(hn_config_validate(&cfg, 0), "hn_config_validate");
    (void)hn_config_model_spec(&cfg);
    char *ini = hn_config_to_ini(&cfg);
    FUZZ_CHECK(ini != NULL, "hn_config_to_ini returned NULL");
    hn_config again;
    hn_config_defaults(&again);
    status = hn_config_load_string(&again, ini, "fuzz.ini");
    FUZZ_CHECK(status == HN_OK, "the INI text of an accepted config does not parse: %s\n--- text:\n%s", hn_errmsg(),
               ini);
    FUZZ_CHECK(hn_config_diff(&cfg, &again, NULL) == 0, "keys changed in the round trip:\n%s", ini);
    free(ini);
  }
  free(text);
  return 0;
}
