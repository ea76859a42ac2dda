// Live updates. EventSource cannot send an Authorization header, so the SSE stream of
// GET /v1/events is read with fetch + ReadableStream and the Bearer token, resuming with
// Last-Event-ID. When the stream is unavailable, the JSON form of /v1/events is polled;
// when that is missing too (an older server), a light poll of the inbox stands in.

const POLL_MS = 2000;
const RETRY_MS = 3000;

export class LiveUpdates {
  /** `onEvent(event | null)` is called per event (null: "something may have changed"). */
  constructor(api, onEvent, onMode = () => {}) {
    this.api = api;
    this.onEvent = onEvent;
    this.onMode = onMode;
    // Event ids are per party: the resume point is remembered per party, per tab.
    this.storageKey = `rapport.events.last.${api.identity.partyId}`;
    this.lastId = Number(sessionStorage.getItem(this.storageKey) || 0);
    this.stopped = false;
    this.controller = null;
  }

  start() {
    this.loop();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  remember(id) {
    if (typeof id === "number" && id > this.lastId) {
      this.lastId = id;
      sessionStorage.setItem(this.storageKey, String(id));
    }
  }

  async loop() {
    while (!this.stopped) {
      let mode = "stream";
      try {
        mode = await this.stream();
      } catch {
        mode = "retry";
      }
      if (this.stopped) return;
      if (mode === "json") {
        await this.pollEvents();
      } else if (mode === "missing") {
        await this.pollInbox();
      } else {
        await sleep(RETRY_MS);
      }
    }
  }

  /** Read the SSE stream until it ends. Returns what to do next. */
  async stream() {
    this.controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${await this.api.bearer()}` };
    if (this.lastId) headers["Last-Event-ID"] = String(this.lastId);
    const response = await fetch(`${this.api.base}/v1/events`, { headers, signal: this.controller.signal });
    if (response.status === 404 || response.status === 405) return "missing";
    if (response.status === 401) {
      this.api.token = null;
      return "retry";
    }
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !response.body) return "retry";
    if (!type.startsWith("text/event-stream")) return "json";
    this.onMode("stream");
    this.onEvent(null); // catch up on whatever happened while we were not listening
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "retry";
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.frame(frame);
      }
    }
  }

  frame(text) {
    let id = null;
    const data = [];
    for (const line of text.split("\n")) {
      if (line.startsWith(":")) continue; // heartbeat comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = Number(value);
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let event = null;
    try {
      event = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    this.remember(id ?? event?.id);
    this.onEvent(event);
  }

  async pollEvents() {
    this.onMode("poll");
    while (!this.stopped) {
      try {
        const doc = await this.api.get(`/v1/events?after=${this.lastId}&limit=100`);
        for (const event of doc.data) {
          this.remember(event.id);
          this.onEvent(event);
        }
        if (doc.has_more) continue;
      } catch (err) {
        if (err.status === 404) return;
      }
      await sleep(POLL_MS);
    }
  }

  async pollInbox() {
    this.onMode("poll");
    let last = null;
    for (let round = 0; !this.stopped && round < 30; round++) {
      try {
        const doc = await this.api.get("/v1/messages?unacked=true&limit=200");
        const connections = await this.api.get("/v1/connections?limit=200");
        const favours = await Promise.all(
          connections.data
            .filter((c) => c.status === "active")
            .map((c) => this.api.get(`/v1/connections/${c.cid}/favours`).catch(() => [])),
        );
        const fingerprint = JSON.stringify([doc.data.map((m) => m.id), connections.data, favours]);
        if (last !== null && fingerprint !== last) this.onEvent(null);
        last = fingerprint;
      } catch {
        // keep polling; the next round retries
      }
      await sleep(POLL_MS);
    }
    // Re-probe the stream now and then: it may have been deployed meanwhile.
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
