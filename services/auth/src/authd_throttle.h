/*  authd_throttle -- login brute-force brake: failed logins counted per
    account (normalised e-mail, known or not, so the answer never tells
    which exist) and per client address, in the auth database so replicas
    and restarts share them.

    After AUTHD_LOGIN_*_FREE failures each further attempt on that key
    must wait 2^(failures - allowance) s, capped at AUTHD_LOGIN_DELAY_CAP_S,
    counted from the last failure. A key with no failure for
    AUTHD_LOGIN_FORGET_S is forgotten (its row pruned). Checked before
    any Argon2 work, so a refused attempt costs one indexed SELECT.    */
#ifndef AUTHD_THROTTLE_H
#define AUTHD_THROTTLE_H

#include "cm_db.h"
#include "cm_status.h"

#include <stdint.h>

#define AUTHD_LOGIN_ACCOUNT_FREE 5
#define AUTHD_LOGIN_ADDR_FREE    20
#define AUTHD_LOGIN_DELAY_CAP_S  900
#define AUTHD_LOGIN_FORGET_S     86400
/* Longest client_addr kept as a key (an IPv6 text is at most 45). */
#define AUTHD_CLIENT_ADDR_MAX 64

/* Wait after `failures` failures with `allowance` free ones: 0 below the
   allowance, else min (2^(failures - allowance), AUTHD_LOGIN_DELAY_CAP_S). */
uint32_t authd_throttle_delay_s (uint32_t failures, uint32_t allowance);

/* May an attempt on account (normalised e-mail, NULL/"" = none) from addr
   (NULL/"" = none) go ahead at now_s? CM_OK; CM_RATE_LIMITED with
   *retry_after_s = seconds left (>= 1, the longer of the two waits);
   CM_INTERNAL on a database failure (callers refuse: fail closed).    */
cm_status_t authd_throttle_check (cm_db_t *db, const char *req, const char *account,
                                  const char *addr, uint64_t now_s,
                                  uint32_t *retry_after_s);

/* Counts one failed attempt against account and addr (either may be
   NULL/""), pruning rows idle for AUTHD_LOGIN_FORGET_S. 0/-1.        */
int authd_throttle_fail (cm_db_t *db, const char *req, const char *account,
                         const char *addr, uint64_t now_s);

/* A successful login: forgets the account's failures (not the
   address's: one good account must not launder a spraying address). 0/-1. */
int authd_throttle_clear (cm_db_t *db, const char *req, const char *account);

#endif
