/* Timers owned by the core. A module's timer is a uv_timer_t the core keeps
 * on a list, so that draining stops every one of them in one place and the
 * exit path frees the ones a module forgot. */
#include "netagent/agent.h"
#include "netagent/util.h"

struct na_timer {
	uv_timer_t h;
	na_timer_fn fn;
	void *ud;
	na_agent_t *ag;
	struct na_timer *prev, *next;
};

static struct na_timer *timers;

static void on_timer(uv_timer_t *h)
{
	struct na_timer *t = h->data;
	if (t->ag->draining) {
		uv_timer_stop(h);
		return;
	}
	t->fn(t->ud);
}

na_timer_t *na_timer_new(na_agent_t *ag, na_timer_fn fn, void *ud)
{
	struct na_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (uv_timer_init(ag->loop, &t->h) < 0) {
		free(t);
		return NULL;
	}
	t->h.data = t;
	t->fn = fn;
	t->ud = ud;
	t->ag = ag;
	t->next = timers;
	if (timers)
		timers->prev = t;
	timers = t;
	return t;
}

void na_timer_start(na_timer_t *t, unsigned long long after_ms, unsigned long long repeat_ms)
{
	if (t->ag->draining)
		return;
	uv_timer_start(&t->h, on_timer, after_ms, repeat_ms);
}

void na_timer_stop(na_timer_t *t)
{
	uv_timer_stop(&t->h);
}

int na_timer_active(const na_timer_t *t)
{
	return uv_is_active((const uv_handle_t *)&t->h);
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

void na_timer_free(na_timer_t *t)
{
	if (!t)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	uv_timer_stop(&t->h);
	uv_close((uv_handle_t *)&t->h, on_closed);
}

/* Draining: no module timer fires any more (main.c). */
void na_timer_stop_all(void)
{
	for (struct na_timer *t = timers; t; t = t->next)
		uv_timer_stop(&t->h);
}

/* Exit: whatever is left is closed with the loop's other handles. */
void na_timer_free_all(void)
{
	while (timers)
		na_timer_free(timers);
}

struct deferred {
	uv_timer_t h;
	na_timer_fn fn;
	void *ud;
};

static void deferred_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_deferred(uv_timer_t *h)
{
	struct deferred *d = h->data;
	/* Unlike module timers it runs while draining too: it completes an
	 * operation somebody is waiting for. */
	d->fn(d->ud);
	uv_close((uv_handle_t *)h, deferred_closed);
}

int na_defer(na_agent_t *ag, na_timer_fn fn, void *ud)
{
	struct deferred *d = calloc(1, sizeof(*d));
	if (!d || uv_timer_init(ag->loop, &d->h) < 0) {
		free(d);
		return -1;
	}
	d->h.data = d;
	d->fn = fn;
	d->ud = ud;
	uv_timer_start(&d->h, on_deferred, 0, 0);
	return 0;
}
