/*  cli_args -- the `safeshare` command line.                            */
#include "cli_args.h"
#include "cli_health.h"
#include "cm_curve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cli_args_usage =
    "commands:\n"
    "  up                               start the local stack in the foreground\n"
    "                                   (Ctrl-C stops it)\n"
    "  keys generate                    make a new current KEK, and the JWT signing\n"
    "                                   key pair if it does not exist yet\n"
    "  keys list                        the KEKs, which one is current, and how\n"
    "                                   many stored DEKs each one wraps\n"
    "  keys rotate [--resume] [--batch N] [--pause-ms MS]\n"
    "                                   add a new current KEK and rewrap every\n"
    "                                   stored DEK with it; --resume only rewraps\n"
    "                                   (finishes an interrupted rotation)\n"
    "  keys retire ID                   remove KEK ID from the ring, once no\n"
    "                                   stored DEK uses it (never the current)\n"
    "  keys rotate-jwt                  replace the JWT signing key pair; tokens\n"
    "                                   signed with the old key stay valid until\n"
    "                                   they expire\n"
    "  keys service-gen NAME [--dir DIR] [--force]\n"
    "                                   make a service's CurveZMQ key pair:\n"
    "                                   DIR/NAME.key (public) and NAME.key_secret\n"
    "                                   (0600); DIR defaults to $SAFESHARE_KEY_DIR/\n"
    "                                   curve; prints the public key\n"
    "  user add EMAIL --role ROLE       create a verified user; ROLE is ops, admin\n"
    "                                   or client; the password is read from stdin\n"
    "  user list [--role ROLE] [--email PART]\n"
    "                                   list users, newest first; PART: a part of\n"
    "                                   the address (any case)\n"
    "  user disable EMAIL               disable a user and end its sessions\n"
    "  user enable EMAIL                enable a disabled user again\n"
    "  decrypt --file ID --out PATH     decrypt a stored file offline (storage DB,\n"
    "                                   blob dir and KEK ring; no service needed)\n"
    "                                   into a new file PATH (mode 0600)\n"
    "  fsck [--repair] [--grace SECONDS]\n"
    "                                   check every stored file offline (blob,\n"
    "                                   size, every chunk, SHA-256) and find\n"
    "                                   orphan blobs and pending uploads older\n"
    "                                   than SECONDS (3600); --repair removes\n"
    "                                   those (never a committed file)\n"
    "  mail list [--status STATUS] [--limit N]\n"
    "                                   the mailer's jobs, newest first; STATUS is\n"
    "                                   pending, sending, sent or failed\n"
    "  mail retry ID                    send a failed mail job again\n"
    "  health SERVICE [--timeout-ms N]  exit 0 if SERVICE (gateway, auth, crypto,\n"
    "                                   storage, mailer or crypto-worker) answers\n"
    "                                   its health check within N ms (3000), else\n"
    "                                   1 and one line why (container healthchecks)\n"
    "  version                          print the version\n"
    "  help                             this text\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage or configuration error";

/* Commands that later issues add: named so that the error says so
   instead of calling them unknown.                                     */
static const char *const s_later[] = {NULL};

static int s_fail (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fail (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
    return -1;
}

static int
s_listed (const char *const *list, const char *word)
{
    for (; *list; list++) {
        if (strcmp (*list, word) == 0) {
            return 1;
        }
    }
    return 0;
}

int
cli_args_role_valid (const char *role)
{
    return role && (strcmp (role, "ops") == 0 || strcmp (role, "admin") == 0 ||
                    strcmp (role, "client") == 0);
}

/* "--NAME VALUE" or "--NAME=VALUE" at argv[*i]: 1 with *value set (and
   *i past it), 0 when argv[*i] is not that option, -1 (err set) when the
   value is missing.                                                    */
static int
s_option (int argc, char *const *argv, int *i, const char *name, const char **value,
          const char *what, char *err, size_t errlen)
{
    const char *a = argv[*i];
    size_t len = strlen (name);
    if (strncmp (a, name, len) != 0) {
        return 0;
    }
    if (a[len] == '=') {
        *value = a + len + 1;
        return 1;
    }
    if (a[len] != '\0') {
        return 0;
    }
    if (*i + 1 >= argc) {
        return s_fail (err, errlen, "%s needs a value (%s)", name, what);
    }
    *value = argv[++*i];
    return 1;
}

static int
s_parse_user_add (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int o = s_option (argc, argv, &i, "--role", &out->role, "ops, admin or client",
                          err, errlen);
        if (o < 0) {
            return -1;
        }
        if (o > 0) {
            continue;
        }
        if (a[0] == '-') {
            return s_fail (err, errlen, "user add: unknown option %.64s", a);
        } else if (out->email) {
            return s_fail (err, errlen, "user add: unexpected argument %.64s", a);
        } else {
            out->email = a;
        }
    }
    if (!out->email || !out->email[0]) {
        return s_fail (err, errlen, "user add needs an EMAIL");
    }
    if (!out->role) {
        return s_fail (err, errlen, "user add needs --role ops|admin|client");
    }
    if (!cli_args_role_valid (out->role)) {
        return s_fail (err, errlen, "unknown role '%.64s' (ops, admin or client)",
                       out->role);
    }
    return 0;
}

static int
s_parse_user_list (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        int o = s_option (argc, argv, &i, "--role", &out->role, "ops, admin or client",
                          err, errlen);
        if (o == 0) {
            o = s_option (argc, argv, &i, "--email", &out->email,
                          "a part of the e-mail address", err, errlen);
        }
        if (o < 0) {
            return -1;
        }
        if (o == 0) {
            return s_fail (err, errlen, "user list: %s %.64s",
                           argv[i][0] == '-' ? "unknown option" : "unexpected argument",
                           argv[i]);
        }
    }
    if (out->role && !cli_args_role_valid (out->role)) {
        return s_fail (err, errlen, "unknown role '%.64s' (ops, admin or client)",
                       out->role);
    }
    if (out->email && strlen (out->email) > CLI_EMAIL_PART_MAX) {
        return s_fail (err, errlen, "user list: --email is longer than %d bytes",
                       CLI_EMAIL_PART_MAX);
    }
    if (out->email && !out->email[0]) {
        out->email = NULL; /* "" matches every address: no filter */
    }
    return 0;
}

/* `user disable|enable EMAIL`: exactly one address, no options. */
static int
s_parse_user_email (const char *sub, int argc, char *const *argv, cli_args_t *out,
                    char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-') {
            return s_fail (err, errlen, "user %s: unknown option %.64s", sub, a);
        }
        if (out->email) {
            return s_fail (err, errlen, "user %s: unexpected argument %.64s", sub, a);
        }
        out->email = a;
    }
    if (!out->email || !out->email[0]) {
        return s_fail (err, errlen, "user %s needs an EMAIL", sub);
    }
    return 0;
}

/* A strict decimal in [lo, hi]; -1 if not.                            */
static int
s_uint (const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    if (!s || !*s || strlen (s) > 9 || strspn (s, "0123456789") != strlen (s)) {
        return -1;
    }
    unsigned long v = strtoul (s, NULL, 10);
    if (v < lo || v > hi) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int
s_lower_hex (const char *s, size_t len)
{
    return s && strlen (s) == len && strspn (s, "0123456789abcdef") == len;
}

static int
s_parse_rotate (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (strcmp (argv[i], "--resume") == 0) {
            out->resume = 1;
            continue;
        }
        int o = s_option (argc, argv, &i, "--batch", &v, "rows per batch", err, errlen);
        if (o > 0 && s_uint (v, 1, CLI_REWRAP_BATCH_MAX, &out->batch) != 0) {
            return s_fail (err, errlen, "keys rotate: --batch must be 1..%d",
                           CLI_REWRAP_BATCH_MAX);
        }
        if (o == 0) {
            o = s_option (argc, argv, &i, "--pause-ms", &v, "milliseconds", err, errlen);
            if (o > 0 && s_uint (v, 0, CLI_REWRAP_PAUSE_MAX, &out->pause_ms) != 0) {
                return s_fail (err, errlen, "keys rotate: --pause-ms must be 0..%d",
                               CLI_REWRAP_PAUSE_MAX);
            }
        }
        if (o < 0) {
            return -1;
        }
        if (o == 0) {
            return s_fail (err, errlen, "keys rotate: %s %.64s",
                           argv[i][0] == '-' ? "unknown option" : "unexpected argument",
                           argv[i]);
        }
    }
    return 0;
}

static int
s_parse_retire (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-') {
            return s_fail (err, errlen, "keys retire: unknown option %.64s", argv[i]);
        }
        if (out->kek_id) {
            return s_fail (err, errlen, "keys retire: unexpected argument %.64s",
                           argv[i]);
        }
        out->kek_id = argv[i];
    }
    if (!out->kek_id) {
        return s_fail (err, errlen, "keys retire needs a KEK ID (see keys list)");
    }
    if (!s_lower_hex (out->kek_id, 16)) {
        return s_fail (err, errlen,
                       "keys retire: %.64s is not a KEK id (16 lowercase hex)",
                       out->kek_id);
    }
    return 0;
}

static int
s_parse_service_gen (int argc, char *const *argv, cli_args_t *out, char *err,
                     size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--force") == 0) {
            out->force = 1;
            continue;
        }
        int o =
            s_option (argc, argv, &i, "--dir", &out->key_dir, "a directory", err, errlen);
        if (o < 0) {
            return -1;
        }
        if (o > 0) {
            continue;
        }
        if (argv[i][0] == '-' || out->key_name) {
            return s_fail (err, errlen, "keys service-gen: %s %.64s",
                           argv[i][0] == '-' ? "unknown option" : "unexpected argument",
                           argv[i]);
        }
        out->key_name = argv[i];
    }
    if (!out->key_name) {
        return s_fail (err, errlen, "keys service-gen needs a NAME (e.g. gateway)");
    }
    if (!cm_curve_name_valid (out->key_name)) {
        return s_fail (err, errlen,
                       "keys service-gen: NAME must be 1..%d of [a-z0-9-], not %.64s",
                       CM_CURVE_NAME_MAX, out->key_name);
    }
    if (out->key_dir && !out->key_dir[0]) {
        return s_fail (err, errlen, "keys service-gen: --dir needs a directory");
    }
    return 0;
}

static int
s_parse_decrypt (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        int o =
            s_option (argc, argv, &i, "--file", &out->file_id, "a file id", err, errlen);
        if (o == 0) {
            o = s_option (argc, argv, &i, "--out", &out->out_path, "the output path", err,
                          errlen);
        }
        if (o < 0) {
            return -1;
        }
        if (o == 0) {
            return s_fail (err, errlen, "decrypt: %s %.64s",
                           argv[i][0] == '-' ? "unknown option" : "unexpected argument",
                           argv[i]);
        }
    }
    if (!out->file_id || !out->out_path) {
        return s_fail (err, errlen, "decrypt needs --file ID and --out PATH");
    }
    if (!s_lower_hex (out->file_id, 32)) {
        return s_fail (err, errlen, "decrypt: %.64s is not a file id (32 lowercase hex)",
                       out->file_id);
    }
    if (!out->out_path[0]) {
        return s_fail (err, errlen, "decrypt: --out needs a path");
    }
    return 0;
}

static int
s_parse_fsck (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    out->grace_s = CLI_FSCK_GRACE_DEFAULT;
    for (int i = 0; i < argc; i++) {
        if (strcmp (argv[i], "--repair") == 0) {
            out->repair = 1;
            continue;
        }
        const char *grace = NULL;
        int o = s_option (argc, argv, &i, "--grace", &grace, "a number of seconds", err,
                          errlen);
        if (o < 0) {
            return -1;
        }
        if (o == 0) {
            return s_fail (err, errlen, "fsck: %s %.64s",
                           argv[i][0] == '-' ? "unknown option" : "unexpected argument",
                           argv[i]);
        }
        char *end = NULL;
        unsigned long v =
            grace[0] >= '0' && grace[0] <= '9' ? strtoul (grace, &end, 10) : 0;
        if (!end || *end || v > CLI_FSCK_GRACE_MAX) {
            return s_fail (err, errlen, "fsck: --grace needs 0..%u seconds, not %.64s",
                           CLI_FSCK_GRACE_MAX, grace);
        }
        out->grace_s = (unsigned)v;
    }
    return 0;
}

static int
s_parse_health (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    out->timeout_ms = CLI_HEALTH_TIMEOUT_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int o =
            s_option (argc, argv, &i, "--timeout-ms", &v, "milliseconds", err, errlen);
        if (o < 0) {
            return -1;
        }
        if (o > 0) {
            if (s_uint (v, 1, CLI_HEALTH_TIMEOUT_MAX, &out->timeout_ms) != 0) {
                return s_fail (err, errlen, "health: --timeout-ms must be 1..%d",
                               CLI_HEALTH_TIMEOUT_MAX);
            }
            continue;
        }
        if (argv[i][0] == '-') {
            return s_fail (err, errlen, "health: unknown option %.64s", argv[i]);
        }
        if (out->service) {
            return s_fail (err, errlen, "health: unexpected argument %.64s", argv[i]);
        }
        out->service = argv[i];
    }
    if (!out->service) {
        return s_fail (err, errlen,
                       "health needs a SERVICE (gateway, auth, crypto, storage, mailer, "
                       "crypto-worker)");
    }
    if (!cli_health_service_valid (out->service)) {
        return s_fail (err, errlen,
                       "health: unknown service %.64s (gateway, auth, crypto, storage, "
                       "mailer, crypto-worker)",
                       out->service);
    }
    return 0;
}

int
cli_args_parse (int argc, char *const *argv, cli_args_t *out, char *err, size_t errlen)
{
    memset (out, 0, sizeof *out);
    if (argc < 2) {
        return s_fail (err, errlen, "missing command");
    }
    const char *cmd = argv[1];
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (strcmp (cmd, "help") == 0 || strcmp (cmd, "version") == 0 ||
        strcmp (cmd, "up") == 0) {
        if (argc > 2) {
            return s_fail (err, errlen, "%s: unexpected argument %.64s", cmd, argv[2]);
        }
        out->cmd = cmd[0] == 'h'   ? CLI_CMD_HELP
                   : cmd[0] == 'v' ? CLI_CMD_VERSION
                                   : CLI_CMD_UP;
        return 0;
    }
    if (strcmp (cmd, "keys") == 0) {
        if (!sub) {
            return s_fail (err, errlen,
                           "keys needs a subcommand (generate, list, rotate, retire, "
                           "rotate-jwt, service-gen)");
        }
        if (strcmp (sub, "generate") == 0 || strcmp (sub, "rotate-jwt") == 0 ||
            strcmp (sub, "list") == 0) {
            if (argc > 3) {
                return s_fail (err, errlen, "keys %s: unexpected argument %.64s", sub,
                               argv[3]);
            }
            out->cmd = sub[0] == 'g'   ? CLI_CMD_KEYS_GENERATE
                       : sub[0] == 'l' ? CLI_CMD_KEYS_LIST
                                       : CLI_CMD_KEYS_ROTATE_JWT;
            return 0;
        }
        if (strcmp (sub, "rotate") == 0) {
            out->cmd = CLI_CMD_KEYS_ROTATE;
            out->batch = CLI_REWRAP_BATCH_DEFAULT;
            return s_parse_rotate (argc - 3, argv + 3, out, err, errlen);
        }
        if (strcmp (sub, "retire") == 0) {
            out->cmd = CLI_CMD_KEYS_RETIRE;
            return s_parse_retire (argc - 3, argv + 3, out, err, errlen);
        }
        if (strcmp (sub, "service-gen") == 0) {
            out->cmd = CLI_CMD_KEYS_SERVICE_GEN;
            return s_parse_service_gen (argc - 3, argv + 3, out, err, errlen);
        }
        return s_fail (err, errlen, "keys: unknown subcommand %.64s", sub);
    }
    if (strcmp (cmd, "user") == 0) {
        if (!sub) {
            return s_fail (err, errlen,
                           "user needs a subcommand (add, list, disable, enable)");
        }
        if (strcmp (sub, "add") == 0) {
            out->cmd = CLI_CMD_USER_ADD;
            return s_parse_user_add (argc - 3, argv + 3, out, err, errlen);
        }
        if (strcmp (sub, "list") == 0) {
            out->cmd = CLI_CMD_USER_LIST;
            return s_parse_user_list (argc - 3, argv + 3, out, err, errlen);
        }
        if (strcmp (sub, "disable") == 0 || strcmp (sub, "enable") == 0) {
            out->cmd = sub[0] == 'd' ? CLI_CMD_USER_DISABLE : CLI_CMD_USER_ENABLE;
            return s_parse_user_email (sub, argc - 3, argv + 3, out, err, errlen);
        }
        return s_fail (err, errlen, "user: unknown subcommand %.64s", sub);
    }
    if (strcmp (cmd, "decrypt") == 0) {
        out->cmd = CLI_CMD_DECRYPT;
        return s_parse_decrypt (argc - 2, argv + 2, out, err, errlen);
    }
    if (strcmp (cmd, "fsck") == 0) {
        out->cmd = CLI_CMD_FSCK;
        return s_parse_fsck (argc - 2, argv + 2, out, err, errlen);
    }
    if (strcmp (cmd, "mail") == 0) {
        out->cmd = CLI_CMD_MAIL; /* cli_mail parses the rest */
        out->mail_argc = argc - 2;
        out->mail_argv = argv + 2;
        return 0;
    }
    if (strcmp (cmd, "health") == 0) {
        out->cmd = CLI_CMD_HEALTH;
        return s_parse_health (argc - 2, argv + 2, out, err, errlen);
    }
    if (s_listed (s_later, cmd)) {
        return s_fail (err, errlen, "%.64s is not available in this version", cmd);
    }
    return s_fail (err, errlen, "unknown command %.64s", cmd);
}
