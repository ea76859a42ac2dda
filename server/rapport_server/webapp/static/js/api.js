// The public /v1 API, as the person's browser uses it: RFC 7523 login, problem+json errors,
// pagination, and signed writes whose chain position is recovered from the connection log.
import { assertion, chainHead, deriveCid, sign } from "./protocol.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? "http_error";
    this.problem = problem;
  }
}

export class Api {
  constructor(identity, base = location.origin) {
    this.identity = identity;
    this.base = base;
    this.token = null;
    this.tokenExpires = 0;
  }

  async register(displayName) {
    const body = {
      kind: "person",
      display_name: displayName,
      assertion: await assertion(this.identity, `${this.base}/v1/parties`),
    };
    return this.request("POST", "/v1/parties", body, { auth: false });
  }

  async login() {
    const form = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: await assertion(this.identity, `${this.base}/v1/oauth/token`),
    });
    const response = await fetch(`${this.base}/v1/oauth/token`, { method: "POST", body: form });
    const doc = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, doc);
    this.token = doc.access_token;
    this.tokenExpires = Date.now() + (doc.expires_in - 30) * 1000;
    return this.token;
  }

  async bearer() {
    if (!this.token || Date.now() > this.tokenExpires) await this.login();
    return this.token;
  }

  async request(method, path, body, { auth = true, retry = true } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) headers.Authorization = `Bearer ${await this.bearer()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && auth && retry) {
      this.token = null;
      return this.request(method, path, body, { auth, retry: false });
    }
    const doc = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, doc);
    return doc;
  }

  get(path) {
    return this.request("GET", path);
  }

  /** Every item of a paginated list. */
  async all(path, limit = 200) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < 100; page++) {
      const sep = path.includes("?") ? "&" : "?";
      const query = `${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const doc = await this.get(path + query);
      items.push(...doc.data);
      if (!doc.has_more) break;
      cursor = doc.next_cursor;
    }
    return items;
  }

  async log(cid) {
    return (await this.all(`/v1/connections/${cid}/log`)).map((entry) => entry.object);
  }

  /**
   * Sign `type`/`body` as the next object of my chain in `cid` and send it. The chain head
   * comes from the server's log (the browser keeps no state that could go stale); on a
   * chain conflict the head is re-read once.
   */
  async act(method, path, cid, type, body, headers = {}) {
    for (let attempt = 0; ; attempt++) {
      const head = chainHead(await this.log(cid), this.identity.did);
      const obj = await sign(this.identity, type, body, { ...headers, cid, seq: head.seq + 1, prev: head.prev });
      try {
        return await this.request(method, path, { object: obj });
      } catch (err) {
        if (attempt === 0 && err instanceof ApiError && (err.code === "chain_broken" || err.code === "replayed")) continue;
        throw err;
      }
    }
  }

  async accept(invitation, grants, label) {
    const cid = await deriveCid(invitation.id, this.identity.did);
    const obj = await sign(
      this.identity,
      "accept",
      { invitation: invitation.id, label, kind: "person", grants },
      { cid, seq: 1, thid: invitation.id },
    );
    return this.request("POST", `/v1/invitations/${invitation.id}/accept`, { object: obj });
  }

  async decline(invitation, reason) {
    const cid = await deriveCid(invitation.id, this.identity.did);
    const body = { invitation: invitation.id };
    if (reason) body.reason = reason;
    const obj = await sign(this.identity, "decline", body, { cid, seq: 1, thid: invitation.id });
    return this.request("POST", `/v1/invitations/${invitation.id}/decline`, { object: obj });
  }

  /** Sever objects for all my active connections, then delete the account. */
  async deleteAccount(data) {
    const connections = await this.all("/v1/connections?status=active");
    const objects = [];
    for (const connection of connections) {
      const head = chainHead(await this.log(connection.cid), this.identity.did);
      objects.push(
        await sign(this.identity, "sever", { data }, { cid: connection.cid, seq: head.seq + 1, prev: head.prev }),
      );
    }
    return this.request("POST", "/v1/account/delete", { objects });
  }
}
