/*  cryptod_call -- wiping release of requests and replies (see
    cryptod_call.h).                                                    */
#include "cryptod_call.h"

#include <openssl/crypto.h>
#include <stdlib.h>

#include "crypto.pb-c.h"

bool
cryptod_call_secret (const cm_call_t *call)
{
    const Safeshare__CryptoRequest *req = (const Safeshare__CryptoRequest *)call->request;
    return !req || req->body_case != SAFESHARE__CRYPTO_REQUEST__BODY_DECRYPT;
}

void
cryptod_frame_destroy_wiped (zframe_t **frame_p)
{
    if (frame_p && *frame_p && zframe_size (*frame_p) > 0) {
        OPENSSL_cleanse (zframe_data (*frame_p), zframe_size (*frame_p));
    }
    zframe_destroy (frame_p);
}

void
cryptod_msg_wipe (zmsg_t *msg)
{
    for (zframe_t *f = msg ? zmsg_first (msg) : NULL; f; f = zmsg_next (msg)) {
        if (zframe_size (f) > 0) {
            OPENSSL_cleanse (zframe_data (f), zframe_size (f));
        }
    }
}

void
cryptod_msg_destroy_wiped (zmsg_t **msg_p)
{
    if (msg_p && *msg_p) {
        cryptod_msg_wipe (*msg_p);
        zmsg_destroy (msg_p);
    }
}

void
cryptod_call_release (cm_call_t *call)
{
    if (!call) {
        return;
    }
    /* Wiped and freed here, each frame once, so the guarantee is ours
       whatever cm_call_release does with the frames it is left.        */
    zframe_t *f;
    while (call->blobs && cryptod_call_secret (call) && (f = zmsg_pop (call->blobs))) {
        cryptod_frame_destroy_wiped (&f);
    }
    cm_call_release (call);
}

void
cryptod_call_free (cm_call_t **call_p)
{
    if (call_p && *call_p) {
        cryptod_call_release (*call_p);
        free (*call_p);
        *call_p = NULL;
    }
}

int
cryptod_msg_send (zmsg_t **msg_p, zsock_t *sock)
{
    zmsg_t *msg = *msg_p;
    *msg_p = NULL;
    if (!msg || zmsg_size (msg) == 0) {
        zmsg_destroy (&msg);
        return -1;
    }
    int rc = 0;
    zframe_t *f;
    while ((f = zmsg_pop (msg))) {
        int flags = zmsg_size (msg) > 0 ? ZFRAME_MORE : 0;
        /* REUSE: libzmq gets a reference (no copy of large frames) and
           the frame stays ours either way. Some czmq versions free the
           frame when a plain send fails, which would skip the wipe.    */
        if (zframe_send (&f, sock, flags | ZFRAME_REUSE) != 0) {
            zmsg_prepend (msg, &f);
            rc = -1;
            break;
        }
        /* Sent: the bytes are libzmq's to deliver; only our reference
           goes (wiping here would change what is on the wire).         */
        zframe_destroy (&f);
    }
    cryptod_msg_destroy_wiped (&msg);
    return rc;
}
