// One connection: grants with toggles and caps, mute, favours and ledger, the verifiable
// history (re-verified here, in the browser), and sever.
import { shortType, verifyLog } from "./protocol.js";
import { ago, announce, busy, capFields, confirmDialog, dataChoice, field, grantWords, h, periodWords, statusChip, topicWords, when } from "./ui.js";

const NAMES = "rapport.names";
const names = JSON.parse(localStorage.getItem(NAMES) || "{}");

export function nameOf(cid) {
  return names[cid] || "Unknown party";
}

/** Learn the counterparty's label of each connection from its signed log (cached). */
export async function learnNames(api, connections, extra = {}) {
  Object.assign(names, extra);
  await Promise.all(
    connections
      .filter((c) => !names[c.cid])
      .map(async (c) => {
        const doc = await api.get(`/v1/connections/${c.cid}/log?limit=2`);
        const [invitation, answer] = doc.data.map((entry) => entry.object);
        const label = c.my_role === "acceptor" ? invitation?.body?.label : answer?.body?.label;
        if (label) names[c.cid] = label;
      }),
  );
  localStorage.setItem(NAMES, JSON.stringify(names));
}

const STEP_WORDS = {
  invitation: "invited",
  accept: "accepted the invitation",
  decline: "declined the invitation",
  "grant-issue": "gave a permission",
  "grant-amend": "changed a permission",
  "grant-revoke": "withdrew a permission",
  mute: "muted",
  unmute: "unmuted",
  sever: "cut off the connection",
  "favour-request": "asked a favour",
  "favour-accept": "agreed to a favour",
  "favour-decline": "declined a favour",
  "favour-withdraw": "withdrew a favour request",
  "favour-fulfil": "did a favour",
  "favour-acknowledge": "thanked for a favour",
  message: "sent a message",
  "key-rotation": "changed keys",
};

const FAVOUR_DONE_WORDS = {
  accept: "You agreed to the favour.",
  decline: "You declined the favour.",
  counter: "You answered with a counter-offer.",
  fulfil: "Favour marked as done.",
  withdraw: "You withdrew your request.",
  acknowledge: "You said thanks.",
};


/** Buttons for the steps I may take on a favour. */
export function favourActions(favour, cid, ctx) {
  const step = (label, name, cls = "secondary small", note) => {
    const button = h("button", { type: "button", class: cls }, label);
    button.addEventListener(
      "click",
      busy(button, async () => {
        let text = note;
        if (name === "counter") {
          const form = await confirmDialog({
            title: "Counter-offer",
            body: [field("What can you offer instead?", h("textarea", { name: "note", required: true, maxlength: 4000, rows: 3 }))],
            confirmLabel: "Send counter-offer",
          });
          if (!form) return;
          text = `Counter-offer: ${form.get("note")}`;
        }
        const body = { favour: favour.id };
        if (text) body.note = text;
        const path = `/v1/connections/${cid}/favours/${favour.id}/${name === "counter" ? "decline" : name}`;
        await ctx.app.api.act("POST", path, cid, `favour-${name === "counter" ? "decline" : name}`, body);
        await ctx.render({ quiet: true });
        announce(FAVOUR_DONE_WORDS[name]);
      }),
    );
    return button;
  };
  const mine = favour.requester === "me";
  const buttons = [];
  if (!mine && favour.status === "requested") buttons.push(step("Accept", "accept", "small"), step("Decline", "decline"), step("Counter…", "counter"));
  if (!mine && favour.status === "accepted") buttons.push(step("Mark as done", "fulfil", "small"));
  if (mine && (favour.status === "requested" || favour.status === "accepted")) buttons.push(step("Withdraw", "withdraw"));
  if (mine && favour.status === "fulfilled") buttons.push(step("Say thanks", "acknowledge", "small"));
  return buttons.length ? h("div", { class: "actions", role: "group", "aria-label": `Answer: ${favour.description}` }, buttons) : null;
}

export async function renderConnection(cid, ctx) {
  const api = ctx.app.api;
  const [connection, grants, favours, ledger, log] = await Promise.all([
    api.get(`/v1/connections/${cid}`),
    api.get(`/v1/connections/${cid}/grants?history=true`),
    api.get(`/v1/connections/${cid}/favours?status=all`),
    api.get(`/v1/connections/${cid}/ledger`),
    api.log(cid),
  ]);
  await learnNames(api, [connection]);
  const name = nameOf(cid);
  const active = connection.status === "active";
  const verdict = await verifyLog(log);
  return h(
    "section",
    {},
    h("div", { class: "card-head" }, h("h1", { tabindex: "-1" }, name), statusChip(connection)),
    h("p", { class: "muted" }, `Connected ${when(connection.created_time)} · last activity ${ago(connection.updated_time)}`),
    active ? permissions(connection, grants, log, name, ctx) : severedNote(connection, name),
    active && muteSection(connection, name, ctx),
    favourSection(connection, favours, ledger, grants, name, ctx),
    historySection(log, verdict, name, ctx),
    active && severSection(connection, name, ctx),
  );
}

function severedNote(connection, name) {
  const data = connection.severance?.data || connection.data_instruction;
  const words = { delete: "delete your data", retain_legal: "keep only what the law requires", export_then_delete: "send you a copy, then delete your data" };
  return h(
    "p",
    { class: "note" },
    connection.status === "severed"
      ? `This connection is cut off${connection.severance?.time ? ` since ${when(connection.severance.time)}` : ""}. ${name} can no longer contact you${data ? ` and must ${words[data] || data}` : ""}.`
      : `This connection is ${connection.status}.`,
  );
}

// ------------------------------------------------------------------ grants

function permissions(connection, grants, log, name, ctx) {
  // One row per scope/topic I have ever granted or been asked for: the latest grant wins.
  const rows = new Map();
  // What the inviter asked for is mine to give only when I accepted the invitation.
  const requested = connection.my_role === "acceptor" ? log[0]?.body?.requested || [] : [];
  for (const spec of requested) rows.set(`${spec.scope}|${spec.topic}`, { spec, grant: null });
  const byTime = [...grants.granted_by_me].sort((a, b) => a.issued_time - b.issued_time || (a.status === "active") - (b.status === "active"));
  for (const grant of byTime) {
    const spec = specOf(grant);
    rows.set(`${spec.scope}|${spec.topic}`, { spec, grant });
  }
  const theirs = grants.granted_to_me.filter((g) => g.status === "active");
  return h(
    "div",
    {},
    h("h2", {}, `What ${name} may send you`),
    rows.size
      ? h("ul", { class: "plain grants" }, [...rows.values()].map((row, i) => grantRow(connection, row, name, i, ctx)))
      : h("p", {}, `${name} has not asked for anything.`),
    h("h2", {}, `What you may send ${name}`),
    theirs.length
      ? h("ul", { class: "plain" }, theirs.map((g) => h("li", {}, grantWords(specOf(g), "You").replace("send you", `send ${name}`).replace("ask you", `ask ${name}`))))
      : h("p", { class: "muted" }, "Nothing."),
  );
}

function specOf(grant) {
  const spec = { scope: grant.scope, topic: grant.topic };
  for (const name of ["purpose", "rate", "quiet_hours", "expires_time"]) {
    if (grant[name] !== null && grant[name] !== undefined) spec[name] = grant[name];
  }
  return spec;
}

function grantRow(connection, { spec, grant }, name, index, ctx) {
  const cid = connection.cid;
  const on = grant?.status === "active";
  const id = `grant-${index}`;
  const toggle = h("input", { type: "checkbox", role: "switch", id, checked: on, "aria-describedby": `${id}-words` });
  const words = h("span", { id: `${id}-words` }, grantWords(spec, name));
  toggle.addEventListener(
    "change",
    busy(toggle, async () => {
      if (on) {
        await ctx.app.api.act("POST", `/v1/connections/${cid}/grants/${grant.id}/revoke`, cid, "grant-revoke", { grant_id: grant.id });
        await ctx.render({ quiet: true });
        announce(`${name} may no longer ${spec.scope === "favour" ? "ask you favours" : "send you messages"} about ${topicWords(spec.topic)}.`);
      } else {
        await ctx.app.api.act("POST", `/v1/connections/${cid}/grants`, cid, "grant-issue", { grant: spec });
        await ctx.render({ quiet: true });
        announce(`${name} may now ${spec.scope === "favour" ? "ask you favours" : "send you messages"} about ${topicWords(spec.topic)}.`);
      }
    }),
  );
  const label = `${spec.scope === "favour" ? "Favours" : "Messages"} about ${topicWords(spec.topic)}`;
  const row = h("li", { class: "grant" }, h("div", { class: "switch" }, toggle, h("label", { for: id }, label)), words);
  if (on) row.append(capEditor(cid, grant, spec, index, ctx));
  return row;
}

function capEditor(cid, grant, spec, index, ctx) {
  const cap = capFields(spec, `cap-${index}`);
  const save = h("button", { type: "submit", class: "secondary small" }, "Save limit");
  const form = h(
    "form",
    { class: "cap", "aria-label": `Limit for ${topicWords(spec.topic)}` },
    cap.elements,
    save,
    h("span", { class: "hint" }, spec.rate ? `now: ${spec.rate.count} per ${periodWords(spec.rate.period)}` : "now: no limit (leave empty for none)"),
  );
  form.addEventListener(
    "submit",
    busy(save, async () => {
      const next = cap.withCap(spec);
      await ctx.app.api.act("POST", `/v1/connections/${cid}/grants/${grant.id}/amend`, cid, "grant-amend", { replaces: grant.id, grant: next });
      await ctx.render({ quiet: true });
      announce(next.rate ? `Limit saved: at most ${next.rate.count} per ${periodWords(next.rate.period)}.` : "Limit removed.");
    }),
  );
  return form;
}

// ------------------------------------------------------------------ mute

function muteSection(connection, name, ctx) {
  const cid = connection.cid;
  const mute = connection.muted_by_me;
  if (mute) {
    const unmute = h("button", { type: "button", class: "secondary" }, "Unmute");
    unmute.addEventListener(
      "click",
      busy(unmute, async () => {
        await ctx.app.api.act("POST", `/v1/connections/${cid}/unmute`, cid, "unmute", {});
        await ctx.render({ quiet: true });
        announce(`${name} is no longer muted.`);
      }),
    );
    return h(
      "div",
      {},
      h("h2", {}, "Mute"),
      h("p", {}, mute.until ? `Muted until ${when(mute.until)}.` : "Muted until you unmute.", mute.exempt_topics.length ? ` Still let through: ${mute.exempt_topics.map(topicWords).join(", ")}.` : ""),
      h("p", { class: "hint" }, "Messages sent meanwhile are held and arrive when the mute ends."),
      unmute,
    );
  }
  const exempt = h("input", { type: "text", id: "mute-exempt", placeholder: "e.g. orders, security" });
  const choices = [
    ["1 hour", 3600],
    ["8 hours", 8 * 3600],
    ["1 week", 7 * 86400],
    ["Until I unmute", null],
  ];
  const buttons = choices.map(([label, seconds]) => {
    const button = h("button", { type: "button", class: "secondary" }, label);
    button.addEventListener(
      "click",
      busy(button, async () => {
        const topics = exempt.value
          .split(",")
          .map((t) => t.trim().toLowerCase())
          .filter(Boolean);
        const body = { exempt_topics: topics, mode: "hold" };
        if (seconds) body.until = Math.floor(Date.now() / 1000) + seconds;
        await ctx.app.api.act("PUT", `/v1/connections/${cid}/mute`, cid, "mute", body);
        await ctx.render({ quiet: true });
        announce(`${name} is muted ${seconds ? `for ${label}` : "until you unmute"}.`);
      }),
    );
    return button;
  });
  return h(
    "fieldset",
    { class: "mute" },
    h("legend", {}, h("h2", {}, `Mute ${name}`)),
    field("Let these topics through anyway (optional, comma-separated)", exempt),
    h("div", { class: "actions", role: "group", "aria-label": "Mute for" }, buttons),
  );
}

// ------------------------------------------------------------------ favours

function favourSection(connection, favours, ledger, grants, name, ctx) {
  const cid = connection.cid;
  const canAsk = grants.granted_to_me.filter((g) => g.status === "active" && g.scope === "favour");
  let askForm = null;
  if (connection.status === "active" && canAsk.length) {
    const kind = h("select", { id: "favour-kind" }, canAsk.map((g) => h("option", { value: g.topic === "*" ? "other" : g.topic }, topicWords(g.topic))));
    const description = h("textarea", { id: "favour-description", rows: 2, maxlength: 4000, required: true });
    const ask = h("button", { type: "submit", class: "secondary" }, "Ask");
    askForm = h("form", {}, h("h3", {}, `Ask ${name} a favour`), field("Kind", kind), field("What would you like?", description), ask);
    askForm.addEventListener(
      "submit",
      busy(ask, async () => {
        await ctx.app.api.act("POST", `/v1/connections/${cid}/favours`, cid, "favour-request", { kind: kind.value, description: description.value });
        await ctx.render({ quiet: true });
        announce("Favour requested.");
      }),
    );
  }
  return h(
    "div",
    {},
    h("h2", {}, "Favours"),
    h(
      "p",
      { class: "ledger" },
      `You did ${ledger.me.given} favour${ledger.me.given === 1 ? "" : "s"} for ${name}; ${name} did ${ledger.them.given} for you.`,
      ledger.me.open_asks || ledger.them.open_asks ? ` Open: ${ledger.me.open_asks} from you, ${ledger.them.open_asks} from ${name}.` : "",
    ),
    favours.length
      ? h(
          "ul",
          { class: "cards" },
          favours.map((f) =>
            h(
              "li",
              { class: "card favour", dataset: { status: f.status } },
              h("p", {}, h("strong", {}, f.requester === "me" ? "You asked: " : `${name} asked: `), f.description),
              h("p", { class: "muted" }, `${f.kind} · ${f.status} · ${ago(f.updated_time)}`),
              connection.status === "active" && favourActions(f, cid, ctx),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No favours yet."),
    askForm,
  );
}

// ------------------------------------------------------------------ history

function historySection(log, verdict, name, ctx) {
  const me = ctx.app.identity.did;
  const badge = verdict.ok
    ? h("p", { class: "verified", id: "history-verdict" }, "verified ✓ ", h("span", { class: "hint" }, `${verdict.count} signed objects: every signature, id and hash chain checked in this browser.`))
    : h("p", { class: "unverified", id: "history-verdict" }, "not verified ✗ ", verdict.problems.map((p) => `#${p.index + 1}: ${p.reason}`).join("; "));
  const items = log.map((obj, i) =>
    h(
      "li",
      { class: verdict.problems.some((p) => p.index === i) ? "bad" : "" },
      h("time", { datetime: new Date(obj.created_time * 1000).toISOString() }, when(obj.created_time)),
      " ",
      obj.from === me ? "You" : name,
      " ",
      STEP_WORDS[shortType(obj.type)] || shortType(obj.type),
      obj.body?.topic ? ` (${topicWords(obj.body.topic)})` : "",
    ),
  );
  return h("details", { class: "history", open: true }, h("summary", {}, h("h2", {}, "History")), badge, h("ol", { class: "log" }, items));
}

// ------------------------------------------------------------------ sever

function severSection(connection, name, ctx) {
  const cid = connection.cid;
  const button = h("button", { type: "button", class: "danger" }, `Cut off ${name}…`);
  button.addEventListener(
    "click",
    busy(button, async () => {
      const form = await confirmDialog({
        title: `Cut off ${name}?`,
        body: [
          h(
            "ul",
            {},
            h("li", {}, `${name} can no longer send you messages or ask you favours, and you cannot contact ${name}.`),
            h("li", {}, "Every permission ends, both ways, and open favours are cancelled."),
            h("li", {}, "This is final: to talk again, a new invitation is needed."),
          ),
          dataChoice(`What must ${name} do with your data?`),
          h("label", { class: "check" }, h("input", { type: "checkbox", name: "block" }), ` Do not let ${name} invite me again`),
        ],
        confirmLabel: `Cut off ${name}`,
        danger: true,
      });
      if (!form) return;
      const body = { data: form.get("data"), block_reinvite: form.get("block") === "on" };
      await ctx.app.api.act("POST", `/v1/connections/${cid}/sever`, cid, "sever", body);
      await ctx.render();
      announce(`${name} is cut off.`);
    }),
  );
  return h("div", {}, h("h2", {}, "End this connection"), button);
}
