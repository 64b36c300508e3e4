/*  cli_up -- `safeshare up`.                                            */
#include "cli_up.h"
#include "cli_keys.h"
#include "cli_stack.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Start order: each service before the ones that call it. */
static const char *const s_services[] = {
    "safeshare-crypto", "safeshare-storage", "safeshare-auth",
    "safeshare-mailer", "safeshare-gateway",
};

static const char *const s_endpoints[] = {
    "SAFESHARE_CRYPTO_ENDPOINT",
    "SAFESHARE_STORAGE_ENDPOINT",
    "SAFESHARE_AUTH_ENDPOINT",
    "SAFESHARE_MAILER_ENDPOINT",
};

static int
s_mkdir (const char *dir)
{
    if (cm_mkdirs (dir, 0700) != 0) {
        fprintf (stderr, "safeshare: cannot create %s: %s\n", dir, strerror (errno));
        return -1;
    }
    return 0;
}

/* The data dir and what lives in it; ipc:// sockets need their dir. */
static int
s_layout (cm_config_t *config)
{
    const char *data = cm_config_get (config, "SAFESHARE_DATA_DIR");
    char run[PATH_MAX];
    if (!data || snprintf (run, sizeof run, "%s/run", data) >= (int)sizeof run) {
        fprintf (stderr, "safeshare: SAFESHARE_DATA_DIR is unusable\n");
        return -1;
    }
    if (s_mkdir (data) != 0 || s_mkdir (run) != 0 ||
        s_mkdir (cm_config_get (config, "SAFESHARE_BLOB_DIR")) != 0 ||
        s_mkdir (cm_config_get (config, "SAFESHARE_MAIL_DIR")) != 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof s_endpoints / sizeof s_endpoints[0]; i++) {
        const char *ep = cm_config_get (config, s_endpoints[i]);
        if (ep && strncmp (ep, "ipc://", 6) == 0) {
            char copy[PATH_MAX];
            snprintf (copy, sizeof copy, "%s", ep + 6);
            if (s_mkdir (dirname (copy)) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int
s_bin_dir (char *out, size_t len)
{
    const char *env = getenv ("SAFESHARE_BIN_DIR");
    if (env && *env) {
        if (snprintf (out, len, "%s", env) >= (int)len) {
            fprintf (stderr, "safeshare: SAFESHARE_BIN_DIR is too long\n");
            return -1;
        }
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf (stderr,
                 "safeshare: readlink(/proc/self/exe) failed: %s; set "
                 "SAFESHARE_BIN_DIR\n",
                 strerror (errno));
        return -1;
    }
    exe[n] = '\0';
    snprintf (out, len, "%s", dirname (exe));
    return 0;
}

int
cli_up (cm_config_t *config, const char *config_file)
{
    char bin_dir[PATH_MAX];
    cli_stack_t *stack = NULL;
    char *banner = NULL;
    int rc = 1;
    if (s_bin_dir (bin_dir, sizeof bin_dir) != 0 || s_layout (config) != 0 ||
        cli_keys_prepare (config, false, stdout) != 0) {
        goto cleanup;
    }
    const char *addr = cm_config_get (config, "SAFESHARE_HTTP_ADDR");
    stack = cli_stack_new (bin_dir, config_file, addr);
    if (!stack) {
        goto cleanup;
    }
    /* The gateway finishes in-flight transfers first (its drain). */
    long grace = cm_config_int (config, "SAFESHARE_SHUTDOWN_GRACE_MS");
    cli_stack_set_stop_timeout (stack,
                                CLI_STACK_STOP_TIMEOUT_MS + (grace > 0 ? (int)grace : 0));
    for (size_t i = 0; i < sizeof s_services / sizeof s_services[0]; i++) {
        if (cli_stack_add (stack, s_services[i]) != 0) {
            goto cleanup;
        }
    }
    char data_abs[PATH_MAX], mail_abs[PATH_MAX];
    const char *data = cm_config_get (config, "SAFESHARE_DATA_DIR");
    const char *mail = cm_config_get (config, "SAFESHARE_MAIL_DIR");
    const char *smtp = cm_config_get (config, "SAFESHARE_SMTP_URL");
    /* Never the SMTP URL itself: it may hold a password. */
    if (asprintf (&banner,
                  "safeshare is up at http://%s\n"
                  "%s%s\n"
                  "data in %s\n"
                  "Ctrl-C stops\n",
                  addr, smtp ? "mail is sent by SMTP" : "mail is written to ",
                  smtp ? "" : (realpath (mail, mail_abs) ? mail_abs : mail),
                  realpath (data, data_abs) ? data_abs : data) < 0) {
        banner = NULL;
        goto cleanup;
    }
    printf ("starting safeshare from %s\n", bin_dir);
    fflush (stdout);
    rc = cli_stack_run (stack, banner, stdout);
cleanup:
    free (banner);
    cli_stack_destroy (&stack);
    return rc;
}
