/*  jwt_forge -- test tool: prints an ES256 access token for SUB/ROLE
    signed with PRIVATE_PEM, as if issued OFFSET seconds from now with
    lifetime TTL. Used by system tests to present expired tokens and
    tokens from a foreign key to the real gateway.                      */
#include "cm_jwt.h"
#include "cm_log.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main (int argc, char **argv)
{
    cm_log_init ("jwt_forge", CM_LOG_ERROR);
    if (argc == 4 && strcmp (argv[1], "--keygen") == 0) {
        return cm_jwt_keygen (argv[2], argv[3]) == 0 ? 0 : 1;
    }
    if (argc != 8) {
        fprintf (stderr, "usage: jwt_forge PRIVATE_PEM ISS AUD SUB ROLE OFFSET TTL\n"
                         "       jwt_forge --keygen PRIVATE_PEM PUBLIC_PEM\n");
        return 2;
    }
    cm_jwt_signer_t *signer = cm_jwt_signer_new (argv[1], argv[2], argv[3]);
    if (!signer) {
        return 1;
    }
    long offset = strtol (argv[6], NULL, 10);
    char *token =
        cm_jwt_sign (signer, argv[4], argv[5], (uint64_t)((long)cm_now_s () + offset),
                     (unsigned)strtoul (argv[7], NULL, 10));
    cm_jwt_signer_destroy (&signer);
    if (!token) {
        return 1;
    }
    printf ("%s\n", token);
    free (token);
    return 0;
}
