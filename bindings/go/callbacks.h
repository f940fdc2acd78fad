// The completions of callbacks.c, one per callback type of flipbook.h: what the Go files pass
// as the callback of a native call.
#ifndef FLIPBOOK_GO_CALLBACKS_H
#define FLIPBOOK_GO_CALLBACKS_H

#include "flipbook.h"

void fbgo_done(void *, FbError *);
void fbgo_client_done(void *, FbClient *, FbError *);
void fbgo_append_done(void *, const FbAppendOutcome *, FbError *);
void fbgo_append_states_done(void *, const FbAppendOutcome *, size_t, FbError *);
void fbgo_head_done(void *, const FbHead *, FbError *);
void fbgo_log_head_done(void *, const FbLogHead *, FbError *);
void fbgo_server_info_done(void *, const FbServerInfo *, FbError *);
void fbgo_snapshot_done(void *, const FbSnapshot *, FbError *);
void fbgo_count_done(void *, uint64_t, FbError *);
void fbgo_page_done(void *, const FbPage *, FbError *);
void fbgo_message_done(void *, const FbMessage *, FbError *);
void fbgo_session_done(void *, FbSession *, FbError *);
void fbgo_finish_done(void *, const FbFinished *, size_t, FbError *);

#endif
