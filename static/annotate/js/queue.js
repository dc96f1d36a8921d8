// Keeps the current item and the prefetched next one (both leased), sends submits and skips in
// order, and fetches the item after. Submits that fail on the network wait in an outbox in
// localStorage and are sent again, so no label is lost. A changed answer (from the history) is
// sent in the same order, to annotations/, and leaves the current item as it is (still leased).

const OUTBOX_KEY = "labelloop.outbox";

// One key per submit (the server stores one annotation per key, however often it is sent: a
// retry from the outbox, or a response lost on the way back). randomUUID needs a secure
// context; getRandomValues works on plain http too.
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class LabelQueue {
  constructor({ projectId, csrfToken, onShow, onEmpty, onError, onSaved, onPrefetched }) {
    this.base = `/api/projects/${projectId}`;
    this.csrfToken = csrfToken;
    this.onShow = onShow;
    // Told of each item held in reserve, to warm it up (its image) before it is shown.
    this.onPrefetched = onPrefetched || (() => {});
    this.onEmpty = onEmpty;
    this.onError = onError;
    this.onSaved = onSaved || (() => {});
    this.current = null;
    this.prefetched = null;
    this.waitingForNext = false;
    this.chain = Promise.resolve();
    this.empty = false;
  }

  async post(path, body) {
    const response = await fetch(`${this.base}/${path}/`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": this.csrfToken },
      body: JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.detail || JSON.stringify(data) || `HTTP ${response.status}`);
      error.status = response.status;
      error.data = data;
      throw error;
    }
    return data;
  }

  // Runs `task` after everything sent before it, so the server sees actions in order.
  enqueue(task) {
    this.chain = this.chain.then(task).catch((error) => this.onError(error));
    return this.chain;
  }

  excluded() {
    return [this.current, this.prefetched].filter(Boolean).map((lease) => lease.item.id);
  }

  async start() {
    this.flushOutbox();
    await this.enqueue(async () => {
      const first = await this.post("next", { exclude: [] });
      if (!first) return this.finish();
      this.current = first;
      this.onShow(first);
      // The first item may be answered before this one arrives: receive() shows it then.
      this.receive(await this.post("next", { exclude: this.excluded() }));
    });
  }

  // Show the prefetched item at once; the server hears about the old one in the background.
  advance() {
    this.current = this.prefetched;
    this.prefetched = null;
    if (this.current) {
      this.onShow(this.current);
    } else {
      this.waitingForNext = true;
    }
  }

  receive(next) {
    if (this.waitingForNext) {
      this.waitingForNext = false;
      if (!next) return this.finish();
      this.current = next;
      this.onShow(next);
    } else if (!this.prefetched && next && next.item.id !== this.current?.item.id) {
      this.prefetched = next;
      this.onPrefetched(next);
    }
    if (!next && !this.current) this.finish();
  }

  finish() {
    this.empty = true;
    this.current = null;
    this.onEmpty();
  }

  submit({ value, activeMs, proposal }) {
    const done = this.current;
    if (!done) return;
    // Keyed per item shown: the same item, shown once, is stored once.
    done.idempotencyKey ??= idempotencyKey();
    const body = { item: done.item.id, value, active_ms: activeMs, idempotency_key: done.idempotencyKey };
    if (proposal) body.proposal = proposal;
    this.advance();
    this.enqueue(async () => {
      let result;
      try {
        result = await this.post("submit-and-next", { ...body, exclude: this.excluded() });
      } catch (error) {
        if (error.status === undefined || error.status >= 500) {
          this.stash(body);
          this.receive(await this.post("next", { exclude: this.excluded() }).catch(() => null));
          return;
        }
        throw error;
      }
      this.onSaved(result.annotation);
      this.receive(result.next);
    });
  }

  // A changed answer to an item answered before: a new annotation, the queue's items untouched.
  // Resolves to "saved", "queued" (in the outbox, sent again later) or "failed" (onError said why).
  resubmit({ itemId, value, activeMs }) {
    const body = { item: itemId, value, active_ms: activeMs, idempotency_key: idempotencyKey() };
    let outcome = "failed";
    const sent = this.enqueue(async () => {
      try {
        this.onSaved(await this.post("annotations", body));
        outcome = "saved";
      } catch (error) {
        if (error.status === undefined || error.status >= 500) {
          this.stash(body);
          outcome = "queued";
          return;
        }
        throw error;
      }
    });
    return sent.then(() => outcome);
  }

  // Resolves once everything sent so far has been answered.
  settled() {
    return this.chain;
  }

  skip() {
    const done = this.current;
    if (!done) return;
    this.advance();
    this.enqueue(async () => {
      await this.post("skip", { item: done.item.id });
      this.receive(await this.post("next", { exclude: this.excluded() }));
    });
  }

  // Leaving the page: give the held items back so others (and the newest model's order) get them.
  release() {
    const form = new FormData();
    form.append("csrfmiddlewaretoken", this.csrfToken);
    navigator.sendBeacon(`${this.base}/release/`, form);
  }

  stash(body) {
    const outbox = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]");
    outbox.push({ base: this.base, body });
    localStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox));
    setTimeout(() => this.flushOutbox(), 5000);
  }

  async flushOutbox() {
    const outbox = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]");
    if (!outbox.length) return;
    const left = [];
    for (const entry of outbox) {
      try {
        const response = await fetch(`${entry.base}/annotations/`, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrfToken },
          body: JSON.stringify(entry.body),
        });
        if (response.status >= 500) left.push(entry);
      } catch {
        left.push(entry);
      }
    }
    localStorage.setItem(OUTBOX_KEY, JSON.stringify(left));
    if (left.length) setTimeout(() => this.flushOutbox(), 5000);
  }
}
