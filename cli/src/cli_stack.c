/*  cli_stack -- the supervisor behind `safeshare up`.

    Three phases: starting (a child that exits fails the whole start:
    a misconfiguration must not loop), running (a child that exits is
    restarted after a backoff; too many deaths, or an exec failure, end
    it), stopping (reverse order, one deadline).                       */
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

typedef enum { S_STARTING, S_RUNNING, S_STOPPING } s_phase_t;

typedef struct {
    char *binary;        /* "safeshare-crypto" */
    char *path;          /* bin_dir/safeshare-crypto */
    pid_t pid;           /* 0: not started or reaped */
    int status;          /* wait status once reaped */
    uint64_t started_at; /* cm_mono_ms () of the last start */
    uint64_t restart_at; /* 0, or when to start it again */
    int backoff_ms;      /* the delay before the next restart */
    /* Monotonic times of its recent deaths, oldest first. */
    uint64_t deaths[CLI_STACK_MAX_CRASH_LIMIT + 1];
    int ndeaths;
} s_child_t;

struct cli_stack_t {
    char *bin_dir;
    char *config_file;
    char *http_addr;
    int ready_timeout_ms;
    int stop_timeout_ms;
    cli_stack_policy_t policy;
    s_child_t children[CLI_STACK_MAX_CHILDREN];
    int count;
    bool stop_requested; /* SIGINT/SIGTERM/SIGHUP seen */
    int stop_signals;    /* a second one during shutdown kills at once */
    int failed;          /* index of the child that ended the run, or -1 */
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
    self->stop_timeout_ms = CLI_STACK_STOP_TIMEOUT_MS;
    self->policy = (cli_stack_policy_t){.backoff_first_ms = CLI_STACK_BACKOFF_FIRST_MS,
                                        .backoff_max_ms = CLI_STACK_BACKOFF_MAX_MS,
                                        .stable_ms = CLI_STACK_STABLE_MS,
                                        .crash_limit = CLI_STACK_CRASH_LIMIT,
                                        .crash_window_ms = CLI_STACK_CRASH_WINDOW_MS};
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

void
cli_stack_set_stop_timeout (cli_stack_t *self, int timeout_ms)
{
    self->stop_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
}

int
cli_stack_set_policy (cli_stack_t *self, const cli_stack_policy_t *policy)
{
    if (!policy || policy->backoff_first_ms < 1 ||
        policy->backoff_max_ms < policy->backoff_first_ms || policy->stable_ms < 1 ||
        policy->crash_limit < 1 || policy->crash_limit > CLI_STACK_MAX_CRASH_LIMIT ||
        policy->crash_window_ms < 1) {
        return -1;
    }
    self->policy = *policy;
    return 0;
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

/* In the child, between fork and exec: only async-signal-safe calls. A
   failure writes errno on err_fd (close-on-exec: the parent reads EOF
   when the exec worked) and exits 127.                                */
static void
s_child_exec (const s_child_t *c, const char *config_file, pid_t parent,
              const sigset_t *mask, int err_fd)
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
    int err = 0;
    if (prctl (PR_SET_PDEATHSIG, SIGTERM) != 0) {
        err = errno;
    } else if (getppid () != parent) {
        _exit (127); /* nobody left to tell */
    }
    if (err == 0) {
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
        err = errno;
    }
    if (write (err_fd, &err, sizeof err) < 0) {
        /* the parent then sees exit status 127 */
    }
    _exit (127);
}

/* Forks and execs one child; -1 (one line on stderr, nothing left
   running) if it could not be started.                                */
static int
s_start (cli_stack_t *self, s_child_t *c)
{
    int errpipe[2];
    if (pipe2 (errpipe, O_CLOEXEC) != 0) {
        fprintf (stderr, "safeshare: cannot start %s: pipe2() failed: %s\n", c->binary,
                 strerror (errno));
        return -1;
    }
    sigset_t all, old;
    sigfillset (&all);
    /* No handler of ours may run in the child before exec. */
    sigprocmask (SIG_SETMASK, &all, &old);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        close (errpipe[0]);
        s_child_exec (c, self->config_file, parent, &old, errpipe[1]);
    }
    int err = errno;
    sigprocmask (SIG_SETMASK, &old, NULL);
    close (errpipe[1]);
    if (pid < 0) {
        close (errpipe[0]);
        fprintf (stderr, "safeshare: cannot start %s: fork() failed: %s\n", c->binary,
                 strerror (err));
        return -1;
    }
    /* Also here, so the group exists before we ever signal it. */
    setpgid (pid, pid);
    /* EOF once the exec succeeded (close-on-exec), else the child's errno. */
    int child_err = 0;
    ssize_t n;
    do {
        n = read (errpipe[0], &child_err, sizeof child_err);
    } while (n < 0 && errno == EINTR);
    close (errpipe[0]);
    if (n > 0) {
        waitpid (pid, NULL, 0);
        fprintf (stderr, "safeshare: cannot start %s: execv(%s) failed: %s\n", c->binary,
                 c->path, n == (ssize_t)sizeof child_err ? strerror (child_err) : "?");
        return -1;
    }
    c->pid = pid;
    c->started_at = cm_mono_ms ();
    c->restart_at = 0;
    return 0;
}

static void
s_describe (int status, char *buf, size_t len)
{
    if (WIFEXITED (status)) {
        snprintf (buf, len, "exited with status %d", WEXITSTATUS (status));
    } else if (WIFSIGNALED (status)) {
        snprintf (buf, len, "was killed by signal %d (%s)", WTERMSIG (status),
                  strsignal (WTERMSIG (status)));
    } else {
        snprintf (buf, len, "stopped");
    }
}

/* A child died while running: schedule its restart, or give up when it
   died too often. One line either way.                                */
static void
s_died (cli_stack_t *self, int index, pid_t pid, uint64_t now)
{
    s_child_t *c = &self->children[index];
    const cli_stack_policy_t *p = &self->policy;
    char how[96];
    s_describe (c->status, how, sizeof how);
    /* Forget deaths older than the window, then count this one. */
    int keep = 0;
    for (int i = 0; i < c->ndeaths; i++) {
        if (now - c->deaths[i] < (uint64_t)p->crash_window_ms) {
            c->deaths[keep++] = c->deaths[i];
        }
    }
    c->ndeaths = keep;
    c->deaths[c->ndeaths++] = now;
    if (c->ndeaths > p->crash_limit) {
        fprintf (stderr,
                 "safeshare: %s (pid %d) %s; it died %d times within %d s, giving "
                 "up; stopping the others\n",
                 c->binary, (int)pid, how, c->ndeaths, p->crash_window_ms / 1000);
        if (self->failed < 0) {
            self->failed = index;
        }
        return;
    }
    if (c->backoff_ms <= 0 || now - c->started_at >= (uint64_t)p->stable_ms) {
        c->backoff_ms = p->backoff_first_ms;
    }
    c->restart_at = now + (uint64_t)c->backoff_ms;
    fprintf (stderr, "safeshare: %s (pid %d) %s; restarting it in %d ms\n", c->binary,
             (int)pid, how, c->backoff_ms);
    c->backoff_ms =
        c->backoff_ms > p->backoff_max_ms / 2 ? p->backoff_max_ms : c->backoff_ms * 2;
}

/* Reaps whatever exited and acts on it as the phase says. */
static void
s_reap (cli_stack_t *self, s_phase_t phase)
{
    for (int i = 0; i < self->count; i++) {
        s_child_t *c = &self->children[i];
        if (c->pid <= 0) {
            continue;
        }
        int status;
        pid_t pid = c->pid;
        pid_t r = waitpid (pid, &status, WNOHANG);
        if (r != pid) {
            continue;
        }
        c->pid = 0;
        c->status = status;
        char how[96];
        if (phase == S_RUNNING) {
            s_died (self, i, pid, cm_mono_ms ());
        } else if (phase == S_STARTING && self->failed < 0) {
            self->failed = i;
            s_describe (status, how, sizeof how);
            fprintf (stderr, "safeshare: %s %s; stopping the others\n", c->binary, how);
        } else if (phase == S_STOPPING &&
                   !(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
            self->unclean = true;
            s_describe (status, how, sizeof how);
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
   stop signal skips the wait. A child waiting for its restart stays
   down.                                                               */
static void
s_stop_all (cli_stack_t *self)
{
    uint64_t deadline = cm_mono_ms () + (uint64_t)self->stop_timeout_ms;
    int signals_at_start = self->stop_signals;
    for (int i = 0; i < self->count; i++) {
        self->children[i].restart_at = 0;
    }
    for (int i = self->count - 1; i >= 0; i--) {
        s_child_t *c = &self->children[i];
        if (c->pid <= 0) {
            continue;
        }
        kill (c->pid, SIGTERM);
        while (c->pid > 0 && cm_mono_ms () < deadline) {
            s_wait_signal (deadline);
            s_drain (self);
            s_reap (self, S_STOPPING);
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
                         self->children[i].binary, self->stop_timeout_ms / 1000);
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
        s_reap (self, S_STARTING);
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

/* Restarts the children whose backoff is over; returns the earliest
   pending restart time (0: none), or -1 when one could not be started. */
static int64_t
s_restart_due (cli_stack_t *self)
{
    uint64_t next = 0;
    for (int i = 0; i < self->count; i++) {
        s_child_t *c = &self->children[i];
        if (c->pid > 0 || c->restart_at == 0) {
            continue;
        }
        if (c->restart_at <= cm_mono_ms ()) {
            if (s_start (self, c) != 0) {
                self->failed = i;
                return -1;
            }
            fprintf (stderr, "safeshare: %s restarted (pid %d)\n", c->binary,
                     (int)c->pid);
            continue;
        }
        if (next == 0 || c->restart_at < next) {
            next = c->restart_at;
        }
    }
    return (int64_t)next;
}

/* After readiness: until a stop signal (0) or a give-up (1). */
static int
s_supervise (cli_stack_t *self)
{
    for (;;) {
        s_drain (self);
        if (self->stop_requested) {
            fprintf (stderr, "safeshare: stopping\n");
            return 0;
        }
        s_reap (self, S_RUNNING);
        if (self->failed >= 0) {
            return 1;
        }
        int64_t next = s_restart_due (self);
        if (next < 0) {
            return 1;
        }
        s_wait_signal ((uint64_t)next);
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
    rc = s_supervise (self);
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
