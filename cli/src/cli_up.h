/*  cli_up -- `safeshare up`: the local stack in the foreground.         */
#ifndef CLI_UP_H
#define CLI_UP_H

#include "cm_config.h"

/* First run: the data dir (0700) with keys, run/, blobs/, mail/. Then
   the services from the binary's own directory (SAFESHARE_BIN_DIR
   overrides), each given --config config_file when not NULL; once the
   stack was ready, a service that dies is restarted (cli_stack.h).
   Returns the exit code: 0 after Ctrl-C/SIGTERM, 1 if anything failed
   (a service died during start-up, kept dying or could not be
   restarted).                                                         */
int cli_up (cm_config_t *config, const char *config_file);

#endif
