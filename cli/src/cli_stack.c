/*  cli_stack -- the supervisor behind `safeshare up`.                   */
#include "cli_stack.h"
#include "cli_probe.h"
#include "cm_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Between two /readyz probes: short enough to notice readiness quickly,
   long enough not to spin; the wait ends early on any signal.         */
#define S_PROBE_INTERVAL_MS 100
#define S_PROBE_TIMEOUT_MS  1000

typedef struct {
    char *binary; /* "safeshare-crypto" */
    char *path;   /* bin_dir/safeshare-crypto */
    pid_t pid;    /* 0: not started or reaped */
    int status;   /* wait status once reaped */
} s_child_t;

struct cli_stack_t {
    char *bin_dir;
    char *config_file;
    char *http_addr;
    int ready_timeout_ms;
    s_child_t children[CLI_STACK_MAX_CHILDREN];
    int count;
    bool stop_requested; /* SIGINT/SIGTERM/SIGHUP seen */
    int stop_signals;    /* a second one during shutdown kills at once */
    int failed;          /* index of the first child that exited, or -1 */
    bool unclean;        /* a child failed to stop with exit status 0 */
};

/* The self-pipe (one per process: signals are per process). */
static int s_sigpipe[2] = {-1, -1};

static void
s_on_signal (int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write (s_sigpipe[1], &b, 1) < 0) {
        /* full pipe: a byte is already waiting, nothing is lost */
    }
    errno = saved;
}

static const int s_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
#define S_NSIGNALS (int)(sizeof s_signals / sizeof s_signals[0])

static int
s_signals_install (struct sigaction *saved)
{
    if (pipe2 (s_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf (stderr, "safeshare: pipe2() failed: %s\n", strerror (errno));
        return -1;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset (&sa.sa_mask);
    for (int i = 0; i < S_NSIGNALS; i++) {
        sigaction (s_signals[i], &sa, &saved[i]);
    }
    return 0;
}

static void
s_signals_restore (const struct sigaction *saved)
{
    for (int i = 0; i < S_NSIGNALS; i++) {
        sigaction (s_signals[i], &saved[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        if (s_sigpipe[i] >= 0) {
            close (s_sigpipe[i]);
            s_sigpipe[i] = -1;
        }
    }
}

cli_stack_t *
cli_stack_new (const char *bin_dir, const char *config_file, const char *http_addr)
{
    if (!bin_dir || !*bin_dir || !http_addr || !*http_addr) {
        return NULL;
    }
    cli_stack_t *self = calloc (1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->bin_dir = strdup (bin_dir);
    self->config_file = config_file ? strdup (config_file) : NULL;
    self->http_addr = strdup (http_addr);
    self->ready_timeout_ms = CLI_STACK_READY_TIMEOUT_MS;
    self->failed = -1;
    if (!self->bin_dir || !self->http_addr || (config_file && !self->config_file)) {
        cli_stack_destroy (&self);
    }
    return self;
}

void
cli_stack_destroy (cli_stack_t **self_p)
{
    if (self_p && *self_p) {
        cli_stack_t *self = *self_p;
        for (int i = 0; i < self->count; i++) {
            free (self->children[i].binary);
            free (self->children[i].path);
        }
        free (self->bin_dir);
        free (self->config_file);
        free (self->http_addr);
        free (self);
        *self_p = NULL;
    }
}

void
cli_stack_set_ready_timeout (cli_stack_t *self, int timeout_ms)
{
    self->ready_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

int
cli_stack_add (cli_stack_t *self, const char *binary)
{
    if (self->count >= CLI_STACK_MAX_CHILDREN) {
        fprintf (stderr, "safeshare: too many services\n");
        return -1;
    }
    char *path = NULL;
    if (asprintf (&path, "%s/%s", self->bin_dir, binary) < 0) {
        return -1;
    }
    struct stat st;
    if (stat (path, &st) != 0 || !S_ISREG (st.st_mode) || access (path, X_OK) != 0) {
        fprintf (stderr,
                 "safeshare: %s is missing or not executable (build it, or set "
                 "SAFESHARE_BIN_DIR)\n",
                 path);
        free (path);
        return -1;
    }
    s_child_t *c = &self->children[self->count];
    c->binary = strdup (binary);
    c->path = path;
    c->pid = 0;
    c->status = 0;
    if (!c->binary) {
        free (path);
        return -1;
    }
    self->count++;
    return 0;
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void
s_child_exec (const s_child_t *c, const char *config_file, pid_t parent,
              const sigset_t *mask)
{
    struct sigaction dfl;
    memset (&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int i = 0; i < S_NSIGNALS; i++) {
        sigaction (s_signals[i], &dfl, NULL);
    }
    sigaction (SIGPIPE, &dfl, NULL);
    sigprocmask (SIG_SETMASK, mask, NULL);
    /* The supervisor may die without a word (kill -9): take the service
       down with it. Checked after the prctl, which closes the race with
       a parent that died before it.                                   */
    if (prctl (PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid () != parent) {
        _exit (127);
    }
    setpgid (0, 0);
    int devnull = open ("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2 (devnull, STDIN_FILENO);
        if (devnull != STDIN_FILENO) {
            close (devnull);
        }
    }
    char *argv[4] = {c->binary, NULL, NULL, NULL};
    if (config_file) {
        argv[1] = (char *)"--config";
        argv[2] = (char *)config_file;
    }
    execv (c->path, argv);
    _exit (127);
}

static int
s_start (cli_stack_t *self, s_child_t *c)
{
    sigset_t all, old;
    sigfillset (&all);
    /* No handler of ours may run in the child before exec. */
    sigprocmask (SIG_SETMASK, &all, &old);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        s_child_exec (c, self->config_file, parent, &old);
    }
    int err = errno;
    sigprocmask (SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        fprintf (stderr, "safeshare: fork() failed for %s: %s\n", c->binary,
                 strerror (err));
        return -1;
    }
    /* Also here, so the group exists before we ever signal it. */
    setpgid (pid, pid);
    c->pid = pid;
    return 0;
}

static void
s_describe (const s_child_t *c, char *buf, size_t len)
{
    if (WIFEXITED (c->status)) {
        snprintf (buf, len, "exited with status %d", WEXITSTATUS (c->status));
    } else if (WIFSIGNALED (c->status)) {
        snprintf (buf, len, "was killed by signal %d (%s)", WTERMSIG (c->status),
                  strsignal (WTERMSIG (c->status)));
    } else {
        snprintf (buf, len, "stopped");
    }
}

/* Reaps whatever exited; records the first unexpected exit. */
static void
s_reap (cli_stack_t *self, bool stopping)
{
    for (int i = 0; i < self->count; i++) {
        s_child_t *c = &self->children[i];
        if (c->pid <= 0) {
            continue;
        }
        int status;
        pid_t r = waitpid (c->pid, &status, WNOHANG);
        if (r != c->pid) {
            continue;
        }
        c->pid = 0;
        c->status = status;
        if (!stopping && self->failed < 0) {
            self->failed = i;
            char how[96];
            s_describe (c, how, sizeof how);
            fprintf (stderr, "safeshare: %s %s; stopping the others\n", c->binary, how);
        } else if (stopping && !(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
            self->unclean = true;
            char how[96];
            s_describe (c, how, sizeof how);
            fprintf (stderr, "safeshare: %s %s while stopping\n", c->binary, how);
        }
    }
}

/* Drains the self-pipe; notes stop requests. */
static void
s_drain (cli_stack_t *self)
{
    unsigned char buf[64];
    ssize_t n;
    while ((n = read (s_sigpipe[0], buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != SIGCHLD) {
                self->stop_requested = true;
                self->stop_signals++;
            }
        }
    }
}

/* Waits for a signal byte until the deadline (0: none to wait for). */
static void
s_wait_signal (uint64_t deadline)
{
    uint64_t now = cm_mono_ms ();
    int timeout = deadline == 0 ? -1 : deadline > now ? (int)(deadline - now) : 0;
    struct pollfd p = {s_sigpipe[0], POLLIN, 0};
    if (poll (&p, 1, timeout) < 0 && errno != EINTR) {
        fprintf (stderr, "safeshare: poll() failed: %s\n", strerror (errno));
    }
}

static bool
s_any_alive (const cli_stack_t *self)
{
    for (int i = 0; i < self->count; i++) {
        if (self->children[i].pid > 0) {
            return true;
        }
    }
    return false;
}

static void
s_kill_all (cli_stack_t *self)
{
    for (int i = self->count - 1; i >= 0; i--) {
        if (self->children[i].pid > 0) {
            kill (self->children[i].pid, SIGKILL);
        }
    }
    for (int i = 0; i < self->count; i++) {
        s_child_t *c = &self->children[i];
        if (c->pid > 0) {
            if (waitpid (c->pid, &c->status, 0) == c->pid || errno == ECHILD) {
                c->pid = 0;
            }
        }
    }
}

/* Reverse order, one at a time (the gateway drains before the services
   it calls go away), all within one deadline; then SIGKILL. A second
   stop signal skips the wait.                                         */
static void
s_stop_all (cli_stack_t *self)
{
    uint64_t deadline = cm_mono_ms () + CLI_STACK_STOP_TIMEOUT_MS;
    int signals_at_start = self->stop_signals;
    for (int i = self->count - 1; i >= 0; i--) {
        s_child_t *c = &self->children[i];
        if (c->pid <= 0) {
            continue;
        }
        kill (c->pid, SIGTERM);
        while (c->pid > 0 && cm_mono_ms () < deadline) {
            s_wait_signal (deadline);
            s_drain (self);
            s_reap (self, true);
            if (self->stop_signals > signals_at_start) {
                fprintf (stderr, "safeshare: second signal, killing every service\n");
                self->unclean = s_any_alive (self) || self->unclean;
                s_kill_all (self);
                return;
            }
        }
    }
    if (s_any_alive (self)) {
        for (int i = self->count - 1; i >= 0; i--) {
            if (self->children[i].pid > 0) {
                fprintf (stderr, "safeshare: %s did not stop within %d s, killing it\n",
                         self->children[i].binary, CLI_STACK_STOP_TIMEOUT_MS / 1000);
            }
        }
        self->unclean = true;
        s_kill_all (self);
    }
}

/* 1 ready, 0 stop requested, -1 failed. */
static int
s_wait_ready (cli_stack_t *self)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)self->ready_timeout_ms;
    for (;;) {
        s_drain (self);
        s_reap (self, false);
        if (self->failed >= 0) {
            return -1;
        }
        if (self->stop_requested) {
            return 0;
        }
        uint64_t now = cm_mono_ms ();
        if (now >= deadline) {
            fprintf (stderr,
                     "safeshare: http://%s/readyz did not answer 200 within %d s\n",
                     self->http_addr, self->ready_timeout_ms / 1000);
            return -1;
        }
        int budget = (int)(deadline - now);
        int status = cli_probe_http (
            self->http_addr, "/readyz",
            budget < S_PROBE_TIMEOUT_MS ? budget : S_PROBE_TIMEOUT_MS, s_sigpipe[0]);
        if (status == 200) {
            return 1;
        }
        if (status == CLI_PROBE_ABORTED) {
            continue;
        }
        uint64_t next = cm_mono_ms () + S_PROBE_INTERVAL_MS;
        s_wait_signal (next < deadline ? next : deadline);
    }
}

int
cli_stack_run (cli_stack_t *self, const char *banner, FILE *out)
{
    struct sigaction saved[S_NSIGNALS];
    if (self->count == 0 || s_signals_install (saved) != 0) {
        return 1;
    }
    int rc = 1;
    fflush (NULL); /* nothing buffered may be written twice by a child */
    for (int i = 0; i < self->count; i++) {
        if (s_start (self, &self->children[i]) != 0) {
            goto stop;
        }
    }
    int ready = s_wait_ready (self);
    if (ready <= 0) {
        rc = ready == 0 ? 0 : 1;
        goto stop;
    }
    if (banner) {
        fputs (banner, out);
        fflush (out);
    }
    for (;;) {
        s_drain (self);
        s_reap (self, false);
        if (self->failed >= 0) {
            rc = 1;
            break;
        }
        if (self->stop_requested) {
            fprintf (stderr, "safeshare: stopping\n");
            rc = 0;
            break;
        }
        s_wait_signal (0);
    }
stop:
    s_stop_all (self);
    s_signals_restore (saved);
    /* A service that crashed, was killed or reported an error (a
       sanitizer report, say) on the way down is worth a non-zero exit. */
    if (rc == 0 && self->unclean) {
        fprintf (stderr, "safeshare: not every service stopped cleanly\n");
        rc = 1;
    }
    return rc;
}
