// The C side of the completions (callbacks.h): each callback type of flipbook.h, with its exact
// signature, handing its result to the one exported Go function (flipbookComplete) as an
// untyped pointer. The Go waiter registered for the call knows the type and converts it.
#include <stdint.h>

#include "callbacks.h"
#include "_cgo_export.h"

void fbgo_done(void *u, FbError *e) { flipbookComplete(u, NULL, 0, e); }
void fbgo_client_done(void *u, FbClient *c, FbError *e) { flipbookComplete(u, c, 0, e); }
void fbgo_append_done(void *u, const FbAppendOutcome *o, FbError *e) { flipbookComplete(u, (void *)o, 1, e); }
void fbgo_append_states_done(void *u, const FbAppendOutcome *o, size_t n, FbError *e) {
    flipbookComplete(u, (void *)o, n, e);
}
void fbgo_head_done(void *u, const FbHead *h, FbError *e) { flipbookComplete(u, (void *)h, 0, e); }
void fbgo_log_head_done(void *u, const FbLogHead *h, FbError *e) { flipbookComplete(u, (void *)h, 0, e); }
void fbgo_server_info_done(void *u, const FbServerInfo *i, FbError *e) { flipbookComplete(u, (void *)i, 0, e); }
void fbgo_snapshot_done(void *u, const FbSnapshot *s, FbError *e) { flipbookComplete(u, (void *)s, 0, e); }
void fbgo_count_done(void *u, uint64_t n, FbError *e) { flipbookComplete(u, NULL, n, e); }
void fbgo_page_done(void *u, const FbPage *p, FbError *e) { flipbookComplete(u, (void *)p, 0, e); }
void fbgo_message_done(void *u, const FbMessage *m, FbError *e) { flipbookComplete(u, (void *)m, 0, e); }
void fbgo_session_done(void *u, FbSession *s, FbError *e) { flipbookComplete(u, s, 0, e); }
void fbgo_finish_done(void *u, const FbFinished *f, size_t n, FbError *e) { flipbookComplete(u, (void *)f, n, e); }
