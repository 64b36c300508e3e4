/*  authd_handler -- answers one AuthRequest. Knows nothing of sockets or
    the loop, so a worker pool (issue 3: Argon2 off the loop) can call it
    from several threads, each with its own handler and database handle. */
#ifndef AUTHD_HANDLER_H
#define AUTHD_HANDLER_H

#include "auth.pb-c.h"
#include "authd_admin.h"
#include "authd_sessions.h"
#include "authd_users.h"
#include "cm_db.h"
#include "cm_jwt.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct authd_handler_t authd_handler_t;

typedef struct {
    const char *public_url; /* SAFESHARE_PUBLIC_URL, for mailed links */
    unsigned access_ttl_s;  /* SAFESHARE_ACCESS_TTL */
    unsigned verify_ttl_s;  /* SAFESHARE_VERIFY_TTL */
    unsigned refresh_ttl_s; /* SAFESHARE_REFRESH_TTL */
    unsigned session_ttl_s; /* SAFESHARE_SESSION_TTL */
} authd_handler_config_t;

/* A reply and the storage its pointers refer to. Release with
   authd_reply_release. */
typedef struct {
    Safeshare__AuthReply reply;
    Safeshare__Error error;
    Safeshare__User user;
    Safeshare__HealthReply health;
    Safeshare__SignupReply signup;
    Safeshare__VerifyReply verify;
    Safeshare__LoginReply login;
    Safeshare__UserGetReply user_get;
    Safeshare__ResendReply resend;
    Safeshare__LogoutReply logout;
    Safeshare__LogoutAllReply logout_all;
    Safeshare__UserCreateReply user_create;
    Safeshare__UserListReply user_list;
    Safeshare__UserUpdateReply user_update;
    Safeshare__KeysReply keys;
    authd_user_t u;
    authd_tokens_t tokens; /* LOGIN / REFRESH: secrets, wiped on release */
    /* USER_LIST: the page (heap, freed on release) */
    authd_user_t *list;
    Safeshare__User *list_pb;
    Safeshare__User **list_ptrs;
    char next_cursor[AUTHD_CURSOR_MAX + 1];
    /* KEYS */
    authd_key_t key_rows[CM_JWT_MAX_KEYS];
    size_t n_keys;
    Safeshare__JwtKey key_pb[CM_JWT_MAX_KEYS];
    Safeshare__JwtKey *key_ptrs[CM_JWT_MAX_KEYS];
    bool mail_queued; /* a mail job was committed: kick the outbox */
} authd_reply_t;

/* db and signer borrowed; config copied. */
authd_handler_t *authd_handler_new (cm_db_t *db, cm_jwt_signer_t *signer,
                                    const authd_handler_config_t *config);
void authd_handler_destroy (authd_handler_t **self_p);

/* Signs with signer from now on (borrowed; the key was reloaded). The
   previous one may be destroyed once this returns.                    */
void authd_handler_set_signer (authd_handler_t *self, cm_jwt_signer_t *signer);

/* Fills *out with the answer to request (req_id for logs; the client
   address for throttling and audit is request->meta->client_addr).    */
void authd_handler_handle (authd_handler_t *self, const Safeshare__AuthRequest *request,
                           const char *req_id, authd_reply_t *out);
void authd_reply_release (authd_reply_t *out);

#endif
