/*  authd_audit -- one audit_log row (migration 4) and one log line per
    security event.                                                     */
#include "authd_audit.h"
#include "cm_log.h"
#include "cm_util.h"

#include <stdio.h>
#include <string.h>

/* Longest kept text per field; longer values are cut (they come from
   validated inputs, so a cut only hides garbage).                       */
#define S_FIELD_MAX 254

/* Copies s into out as printable ASCII without blanks, quotes or
   backslashes ('?' for any other byte): a value can neither break the
   logfmt line nor be invalid UTF-8 for PostgreSQL.                     */
static void
s_clean (char out[S_FIELD_MAX + 1], const char *s)
{
    size_t n = 0;
    for (; s && s[n] && n < S_FIELD_MAX; n++) {
        unsigned char c = (unsigned char)s[n];
        out[n] = (c > 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    out[n] = '\0';
}

int
authd_audit (cm_db_t *db, const authd_origin_t *o, const char *event, const char *outcome,
             const char *subject, const char *detail)
{
    char req[S_FIELD_MAX + 1], addr[S_FIELD_MAX + 1], actor[S_FIELD_MAX + 1];
    char ev[S_FIELD_MAX + 1], out[S_FIELD_MAX + 1], subj[S_FIELD_MAX + 1];
    char det[S_FIELD_MAX + 1];
    s_clean (req, o ? o->req_id : NULL);
    s_clean (addr, o ? o->client_addr : NULL);
    s_clean (actor, o ? o->actor : NULL);
    s_clean (ev, event);
    s_clean (out, outcome);
    s_clean (subj, subject);
    s_clean (det, detail);

    char id[33], at_ms[24];
    if (cm_random_hex (id, 16) != 0) {
        cm_error (req, "cm_random_hex() failed for an audit row event=%s", ev);
        return -1;
    }
    snprintf (at_ms, sizeof at_ms, "%llu", (unsigned long long)cm_now_ms ());
    const char *p[] = {id, at_ms, ev, out, actor, subj, addr, req, det};
    cm_db_status_t st = cm_db_exec (db,
                                    "INSERT INTO audit_log (id, at_ms, event, outcome,"
                                    " actor, subject, client_addr, request_id, detail)"
                                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                                    9, p);
    if (st != CM_DB_OK) {
        cm_error (req, "INSERT INTO audit_log failed event=%s outcome=%s subject=%s", ev,
                  out, subj);
        return -1;
    }
    cm_info (req, "audit event=%s outcome=%s actor=%s subject=%s addr=%s detail=%s", ev,
             out, actor, subj, addr, det);
    return 0;
}
