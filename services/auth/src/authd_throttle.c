/*  authd_throttle -- failed-login counters in login_failures (see
    authd_users.c migration 3). Portable SQL: ON CONFLICT DO UPDATE runs
    on SQLite >= 3.24 and PostgreSQL >= 9.5.                           */
#include "authd_throttle.h"
#include "cm_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t
authd_throttle_delay_s (uint32_t failures, uint32_t allowance)
{
    if (failures < allowance) {
        return 0;
    }
    uint32_t over = failures - allowance;
    /* 2^10 already passes the cap: no shift can overflow. */
    if (over >= 10) {
        return AUTHD_LOGIN_DELAY_CAP_S;
    }
    uint32_t delay = 1u << over;
    return delay < AUTHD_LOGIN_DELAY_CAP_S ? delay : AUTHD_LOGIN_DELAY_CAP_S;
}

static bool
s_set (const char *s)
{
    return s && *s;
}

cm_status_t
authd_throttle_check (cm_db_t *db, const char *req, const char *account, const char *addr,
                      uint64_t now_s, uint32_t *retry_after_s)
{
    *retry_after_s = 0;
    if (!s_set (account) && !s_set (addr)) {
        return CM_OK;
    }
    /* "" never matches a key: both kinds are stored non-empty. */
    const char *p[] = {s_set (account) ? account : "", s_set (addr) ? addr : ""};
    cm_db_res_t *res = cm_db_query (db,
                                    "SELECT kind, failures, last_at FROM login_failures"
                                    " WHERE (kind = 'account' AND subject = $1)"
                                    " OR (kind = 'addr' AND subject = $2)",
                                    2, p);
    if (cm_db_res_status (res) != CM_DB_OK) {
        cm_error (req, "SELECT FROM login_failures failed");
        cm_db_res_free (&res);
        return CM_INTERNAL;
    }
    uint64_t wait = 0;
    for (int i = 0; i < cm_db_res_rows (res); i++) {
        const char *kind = cm_db_res_get (res, i, 0);
        const char *fs = cm_db_res_get (res, i, 1);
        const char *ls = cm_db_res_get (res, i, 2);
        if (!kind || !fs || !ls) {
            continue;
        }
        unsigned long long failures = strtoull (fs, NULL, 10);
        unsigned long long last = strtoull (ls, NULL, 10);
        uint32_t allowance = strcmp (kind, "account") == 0 ? AUTHD_LOGIN_ACCOUNT_FREE
                                                           : AUTHD_LOGIN_ADDR_FREE;
        uint32_t delay = authd_throttle_delay_s (
            failures > UINT32_MAX ? UINT32_MAX : (uint32_t)failures, allowance);
        /* A clock that went back counts as "just failed": never wait more
           than the delay itself. */
        uint64_t until = last + delay;
        uint64_t left = until > now_s ? until - now_s : 0;
        if (left > delay) {
            left = delay;
        }
        if (left > wait) {
            wait = left;
        }
    }
    cm_db_res_free (&res);
    if (wait == 0) {
        return CM_OK;
    }
    *retry_after_s = (uint32_t)wait;
    return CM_RATE_LIMITED;
}

static int
s_count (cm_db_t *db, const char *kind, const char *key, const char *now)
{
    const char *p[] = {kind, key, now};
    return cm_db_exec (db,
                       "INSERT INTO login_failures (kind, subject, failures, last_at)"
                       " VALUES ($1, $2, 1, $3)"
                       " ON CONFLICT (kind, subject) DO UPDATE"
                       " SET failures = login_failures.failures + 1,"
                       " last_at = excluded.last_at",
                       3, p) == CM_DB_OK
               ? 0
               : -1;
}

int
authd_throttle_fail (cm_db_t *db, const char *req, const char *account, const char *addr,
                     uint64_t now_s)
{
    char now[24], old[24];
    snprintf (now, sizeof now, "%llu", (unsigned long long)now_s);
    snprintf (old, sizeof old, "%llu",
              (unsigned long long)(now_s > AUTHD_LOGIN_FORGET_S
                                       ? now_s - AUTHD_LOGIN_FORGET_S
                                       : 0));
    if (cm_db_begin (db) != 0) {
        cm_error (req, "cm_db_begin() failed counting a login failure");
        return -1;
    }
    const char *pd[] = {old};
    if (cm_db_exec (db, "DELETE FROM login_failures WHERE last_at <= $1", 1, pd) !=
            CM_DB_OK ||
        (s_set (account) && s_count (db, "account", account, now) != 0) ||
        (s_set (addr) && s_count (db, "addr", addr, now) != 0)) {
        cm_error (req, "counting a login failure in login_failures failed");
        cm_db_rollback (db);
        return -1;
    }
    if (cm_db_commit (db) != 0) {
        cm_error (req, "cm_db_commit() failed counting a login failure");
        return -1;
    }
    return 0;
}

int
authd_throttle_clear (cm_db_t *db, const char *req, const char *account)
{
    if (!s_set (account)) {
        return 0;
    }
    const char *p[] = {account};
    if (cm_db_exec (db,
                    "DELETE FROM login_failures WHERE kind = 'account' AND subject = $1",
                    1, p) != CM_DB_OK) {
        cm_error (req, "DELETE FROM login_failures failed");
        return -1;
    }
    return 0;
}
