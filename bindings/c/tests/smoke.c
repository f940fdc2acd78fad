/* A C program on the C ABI: opens a store (embedded at argv[1], else in memory), appends,
 * sees a conflict with the actual version, reads the events back a page at a time, asks the
 * head, closes. Exits 0 and prints "ok" when every answer is the expected one. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flipbook.h"

/* One completion to wait for: the callbacks run on the client's threads. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int done;
    FbClient *client;
    FbError *error;
    uint64_t last_version;
    size_t events;
    int names_ok;
    int end;
} Waiter;

static void waiter_init(Waiter *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->changed, NULL);
}

static void finish(Waiter *w) {
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static void wait_for(Waiter *w, FbCall *call) {
    pthread_mutex_lock(&w->lock);
    while (!w->done) pthread_cond_wait(&w->changed, &w->lock);
    w->done = 0;
    pthread_mutex_unlock(&w->lock);
    fb_call_free(call);
}

static void on_client(void *user_data, FbClient *client, FbError *error) {
    Waiter *w = user_data;
    w->client = client;
    w->error = error;
    finish(w);
}

static void on_append(void *user_data, const FbAppendOutcome *outcome, FbError *error) {
    Waiter *w = user_data;
    w->error = error;
    if (outcome != NULL) w->last_version = outcome->last_version;
    finish(w);
}

static const char *NAMES[] = {"Opened", "Deposited", "Withdrawn"};

static void on_page(void *user_data, const FbPage *page, FbError *error) {
    Waiter *w = user_data;
    w->error = error;
    w->end = page == NULL;
    for (size_t i = 0; page != NULL && i < page->count; i++) {
        const FbEvent *event = &page->events[i];
        const char *want = NAMES[w->events % 3];
        if (event->name.len != strlen(want) || memcmp(event->name.data, want, event->name.len) != 0) w->names_ok = 0;
        if (!event->has_version || event->version != w->events + 1) w->names_ok = 0;
        w->events++;
    }
    finish(w);
}

static void on_head(void *user_data, const FbHead *head, FbError *error) {
    Waiter *w = user_data;
    w->error = error;
    if (head != NULL) w->last_version = head->event_count;
    finish(w);
}

static void on_done(void *user_data, FbError *error) {
    Waiter *w = user_data;
    w->error = error;
    finish(w);
}

static FbView text(const char *s) { return (FbView){(const uint8_t *)s, strlen(s)}; }

static int fail(const char *what, FbError *error) {
    fprintf(stderr, "%s: %s (%s)\n", what, error ? fb_error_message(error) : "unexpected answer",
            error ? fb_error_code_name(error) : "-");
    fb_error_free(error);
    return 1;
}

int main(int argc, char **argv) {
    Waiter w;
    waiter_init(&w);
    FbClientOptions options;
    fb_client_options_default(&options);
    options.snapshot_every = 0; /* no snapshots: this program reads events only */
    wait_for(&w, argc > 1 ? fb_client_open_embedded(text(argv[1]), &options, on_client, &w)
                          : fb_client_in_memory(&options, on_client, &w));
    if (w.client == NULL) return fail("open", w.error);
    FbClient *client = w.client;

    FbEventInput events[3];
    memset(events, 0, sizeof events);
    for (int i = 0; i < 3; i++) {
        events[i].name = text(NAMES[i]);
        events[i].payload = text("{\"amount\":10}");
    }
    FbAppendInput append = {text("wallet-1"), events, 3, FB_EXPECT_NO_STATE, 0, false, {NULL, 0}};
    wait_for(&w, fb_append(client, &append, on_append, &w));
    if (w.error != NULL || w.last_version != 3) return fail("append", w.error);

    /* A stale expectation: refused with the actual version, nothing stored. */
    append.expected = FB_EXPECT_EXACTLY;
    append.expected_version = 1;
    wait_for(&w, fb_append(client, &append, on_append, &w));
    uint64_t actual = 0;
    if (w.error == NULL || fb_error_code(w.error) != FB_ERROR_VERSION_CONFLICT ||
        !fb_error_actual_version(w.error, &actual) || actual != 3)
        return fail("conflict", w.error);
    fb_error_free(w.error);

    FbStateQuery query;
    memset(&query, 0, sizeof query);
    query.state_id = text("wallet-1");
    FbError *error = NULL;
    FbPages *pages = fb_read_state(client, &query, &error);
    if (pages == NULL) return fail("read", error);
    w.names_ok = 1;
    do {
        wait_for(&w, fb_pages_next(pages, on_page, &w));
        if (w.error != NULL) return fail("page", w.error);
    } while (!w.end);
    fb_pages_free(pages);
    if (w.events != 3 || !w.names_ok) return fail("read back", NULL);

    /* A bad query is refused (before any round trip) with the field at fault, at the first page. */
    query.state_id = (FbView){NULL, 0};
    pages = fb_read_state(client, &query, &error);
    if (pages == NULL) return fail("bad query", error);
    wait_for(&w, fb_pages_next(pages, on_page, &w));
    fb_pages_free(pages);
    if (w.error == NULL || fb_error_code(w.error) != FB_ERROR_INVALID_ARGUMENT || fb_error_field(w.error) == NULL ||
        strcmp(fb_error_field(w.error), "state_id") != 0)
        return fail("bad query", w.error);
    fb_error_free(w.error);

    wait_for(&w, fb_head(client, text("wallet-1"), on_head, &w));
    if (w.error != NULL || w.last_version != 3) return fail("head", w.error);

    wait_for(&w, fb_client_close(client, on_done, &w));
    if (w.error != NULL) return fail("close", w.error);
    wait_for(&w, fb_head(client, text("wallet-1"), on_head, &w));
    if (w.error == NULL || fb_error_code(w.error) != FB_ERROR_CLOSED) return fail("after close", w.error);
    fb_error_free(w.error);
    fb_client_free(client);
    puts("ok");
    return 0;
}
