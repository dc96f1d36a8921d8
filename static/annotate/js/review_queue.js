// The review page's queue (static/annotate/js/review.js): LabelQueue's current/prefetched
// pipeline and ordered sends over /api/projects/<id>/review/, a decision instead of a submit.

import { LabelQueue } from "./queue.js";

// The API takes up to 100 excluded ids: the current item, the prefetched one, those decided
// but not yet sent, and those passed (the oldest passes are dropped first).
const MAX_EXCLUDED = 100;

// LabelQueue's current/prefetched pipeline and ordered sends, over /review/: a decision instead
// of a submit, a pass instead of a skip, and a failed decision puts its item back on screen.
export class ReviewQueue extends LabelQueue {
  constructor(options) {
    super(options);
    this.base = `/api/projects/${options.projectId}/review`;
    this.passed = [];
    this.sending = new Set();
    this.onDecided = options.onDecided;
    this.onRefused = options.onRefused;
    this.onWaiting = options.onWaiting;
  }

  // Items decided but not yet sent are still leased to this reviewer: without them here the
  // server would hand one back as "the item you hold".
  excluded() {
    const ids = [...super.excluded(), ...this.sending];
    const room = Math.max(0, MAX_EXCLUDED - ids.length);
    return room ? [...ids, ...this.passed.slice(-room)] : ids.slice(0, MAX_EXCLUDED);
  }

  // As LabelQueue's, but the prefetch goes through receive(): a reviewer quicker than the
  // first prefetch is waiting for it.
  async start() {
    await this.enqueue(async () => {
      const first = await this.post("next", { exclude: [] });
      if (!first) return this.finish();
      this.current = first;
      this.onShow(first);
      this.receive(await this.post("next", { exclude: this.excluded() }));
    });
  }

  async get(path) {
    const response = await fetch(`${this.base}/${path}/`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  decide(body) {
    const done = this.current;
    if (!done) return;
    this.sending.add(done.item.id);
    this.advance();
    this.enqueue(async () => {
      let review;
      try {
        review = await this.post(`items/${done.item.id}/decision`, body);
      } catch (error) {
        await this.reopen(done, error);
        return;
      } finally {
        this.sending.delete(done.item.id);
      }
      this.onDecided(review, done);
      this.lastShown = done;
      this.receive(await this.post("next", { exclude: this.excluded() }));
    });
  }

  // A refused decision (another reviewer came first, or the item cannot be decided now): show
  // the item again as it is now, with the decision in force, in front of what replaced it.
  async reopen(done, error) {
    let fresh = done;
    try {
      fresh = { ...(await this.get(`items/${done.item.id}`)), lease: done.lease };
    } catch {
      // Shown as it was; the message says what went wrong.
    }
    if (this.current && !this.prefetched) this.prefetched = this.current;
    this.waitingForNext = false;
    this.empty = false;
    this.current = fresh;
    this.onShow(fresh);
    this.onRefused(error, fresh);
  }

  pass() {
    const done = this.current;
    if (!done) return;
    this.passed.push(done.item.id);
    this.lastShown = done;
    if (this.passed.length > MAX_EXCLUDED) this.passed.shift();
    this.advance();
    this.enqueue(async () => {
      // Given back, so that another reviewer may take it; this page keeps it excluded.
      await this.post("release", { item: done.item.id });
      this.receive(await this.post("next", { exclude: this.excluded() }));
    });
  }

  receive(next) {
    if (next) this.onWaiting(next.waiting);
    else this.refreshWaiting();
    super.receive(next);
  }

  // A 204 carries no count: ask the item view of something shown (rarely: the queue ran dry).
  async refreshWaiting() {
    const known = this.current || this.lastShown;
    if (!known) return;
    try {
      this.onWaiting((await this.get(`items/${known.item.id}`)).waiting);
    } catch {
      // The count stays as it was.
    }
  }
}

