// The Tether console's page script: no framework, no build step. Every value from the API is
// put into the page as text (textContent), never as HTML. The session token lives in
// sessionStorage and travels in the Authorization header only (no cookie: nothing a page of
// another origin could make the browser send).
"use strict";

const $ = (sel) => document.querySelector(sel);
const API = new URL("api/", document.baseURI).href;
const SESSION_KEY = "tether.console.session";
const REFRESH_MS = 5000;
let config = null;
let timer = null;
let detail = null; // the connection shown on the detail page

// ---------------------------------------------------------------------------------------------
// Session and API

function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    return s && s.expires_at > Date.now() ? s : null;
  } catch {
    return null;
  }
}

function saveSession(token, expiresIn) {
  sessionStorage.setItem(
    SESSION_KEY,
    JSON.stringify({ access_token: token, expires_at: Date.now() + expiresIn * 1000 }),
  );
}

async function api(path, { method = "GET", body } = {}) {
  const s = session();
  const headers = {};
  if (s) headers.authorization = `Bearer ${s.access_token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && s) {
    signOut("Your session ended: sign in again.");
    throw new Error("signed out");
  }
  if (!res.ok) throw new Error(data.message || `HTTP ${res.status}`);
  return data;
}

function signOut(message) {
  sessionStorage.removeItem(SESSION_KEY);
  show(message || "Signed out.");
  route();
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function show(message) {
  $("#notice").textContent = message || "";
}

function problem(message) {
  const p = $("#problem");
  p.textContent = message || "";
  p.hidden = !message;
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function relative(iso) {
  if (!iso) return "–";
  const secs = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  if (abs < 3) return "just now";
  const text = abs < 60
    ? `${abs}s`
    : abs < 3600
    ? `${Math.floor(abs / 60)}m`
    : abs < 86400
    ? `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m`
    : `${Math.floor(abs / 86400)}d ${Math.floor((abs % 86400) / 3600)}h`;
  return secs >= 0 ? `in ${text}` : `${text} ago`;
}

/** A time cell: relative text, the exact time in a <time> element. */
function timeCell(label, iso) {
  const td = el("td", undefined, { "data-label": label });
  if (!iso) {
    td.textContent = "–";
    return td;
  }
  td.append(el("time", relative(iso), { datetime: iso, title: iso }));
  return td;
}

function cell(label, text, cls) {
  const td = el("td", text ?? "–", { "data-label": label });
  if (cls) td.className = cls;
  return td;
}

function statusCell(status) {
  const td = el("td", undefined, { "data-label": "Status" });
  td.append(el("span", status, { class: `badge badge-${status}` }));
  return td;
}

function percentText(p) {
  return p === null || p === undefined ? "–" : `${Number(p).toFixed(0)} %`;
}

function provider(name) {
  return config.providers.find((p) => p.provider === name) || { provider: name, name };
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------
// Views

function view(name) {
  for (const v of ["sign-in", "list", "detail", "connect"]) {
    $(`#view-${v}`).hidden = v !== name;
  }
}

async function route() {
  clearInterval(timer);
  timer = null;
  problem("");
  const s = session();
  $("#nav").hidden = !s;
  $("#sign-out").hidden = !s;
  if (!s) {
    $("#who").textContent = "";
    view("sign-in");
    $("#password-form").hidden = !(config.supabase_url && config.anon_key);
    $("#local-sign-in").hidden = !config.local_sign_in;
    return;
  }
  const me = await api("me").catch(() => null);
  if (!me) return;
  $("#who").textContent = me.kind === "operator" ? "Operator" : me.email || me.user_id;
  const hash = location.hash.replace(/^#/, "") || "/";
  const m = hash.match(/^\/connections\/([0-9a-f-]{36})$/);
  if (m) {
    view("detail");
    await showDetail(m[1]);
    timer = setInterval(() => !document.hidden && showDetail(m[1]), REFRESH_MS);
  } else if (hash === "/connect") {
    view("connect");
  } else {
    view("list");
    await showList();
    timer = setInterval(() => !document.hidden && showList(), REFRESH_MS);
  }
}

async function showList() {
  let data;
  try {
    data = await api("connections");
  } catch (err) {
    return problem(`Could not load the connections: ${err.message}`);
  }
  const rows = data.connections.map((c) => {
    const tr = el("tr");
    const name = el("td", undefined, { "data-label": "Name" });
    name.append(el("a", c.name, { href: `#/connections/${c.id}` }));
    const streams = provider(c.provider).streams || [];
    const synced = (s, at) =>
      streams.includes(s) ? timeCell(`${s[0].toUpperCase()}${s.slice(1)} synced`, at) : cell(
        `${s[0].toUpperCase()}${s.slice(1)} synced`,
        "n/a",
      );
    const records = streams.includes("customers")
      ? `${c.orders.toLocaleString("en-US")} orders, ${
        c.customers.toLocaleString("en-US")
      } customers`
      : `${c.orders.toLocaleString("en-US")} orders`;
    const backfill = el("td", undefined, { "data-label": "Backfill" });
    if (c.backfill_status) {
      backfill.append(
        el("progress", undefined, {
          max: "100",
          value: String(c.backfill_percent ?? 0),
          "aria-label": `${c.backfill_stream} backfill progress`,
        }),
        el("span", ` ${percentText(c.backfill_percent)} ${c.backfill_stream} ${c.backfill_status}`),
      );
    } else backfill.textContent = "–";
    tr.append(
      name,
      cell("Provider", provider(c.provider).name),
      statusCell(c.status),
      c.token_expires_at
        ? timeCell("Token expires", c.token_expires_at)
        : cell("Token expires", "never"),
      timeCell("Last refresh", c.last_token_refresh_at),
      synced("orders", c.orders_last_synced_at),
      synced("customers", c.customers_last_synced_at),
      cell("Records", records),
      backfill,
      cell("Last error", c.last_error, "error-text"),
    );
    return tr;
  });
  fill($("#connections tbody"), rows);
  $("#list-empty").hidden = rows.length > 0;
  $("#list-updated").textContent = `Last updated ${new Date().toLocaleTimeString()}.`;
}

async function showDetail(id) {
  let data;
  try {
    data = await api(`connections/${id}`);
  } catch (err) {
    return problem(`Could not load the connection: ${err.message}`);
  }
  const c = data.connection;
  const first = !detail || detail.id !== c.id;
  detail = c;
  $("#detail-title").textContent = `${c.name} (${provider(c.provider).name})`;
  const facts = [
    ["Status", c.status],
    ["Account", c.external_id],
    ["Token expires", c.token_expires_at ? relative(c.token_expires_at) : "never"],
    ["Last refresh", relative(c.last_token_refresh_at)],
    ["Orders synced", relative(c.orders_last_synced_at)],
    ["Customers synced", relative(c.customers_last_synced_at)],
    ["Records", `${c.orders} orders, ${c.customers} customers`],
    ["Next attempt", c.next_attempt_at ? relative(c.next_attempt_at) : "–"],
  ];
  $("#detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  const box = $("#detail-error");
  box.hidden = !c.last_error;
  if (c.last_error) {
    box.replaceChildren(
      el("p", `Last error: ${c.last_error}`),
      ...(c.hint ? [el("p", `What to do: ${c.hint}`)] : []),
    );
  }
  $("#reconnect-wrap").hidden = c.status !== "reauth_required";
  if (first) {
    const streams = provider(c.provider).streams || ["orders"];
    $("#backfill-stream").replaceChildren(...streams.map((s) => el("option", s, { value: s })));
    const today = new Date().toISOString().slice(0, 10);
    $("#backfill-to").max = today;
    $("#backfill-from").max = today;
    $("#disconnect-confirm").hidden = true;
  }

  fill(
    $("#backfills tbody"),
    data.backfills.map((b) => {
      const tr = el("tr");
      const progress = el("td", undefined, { "data-label": "Progress" });
      progress.append(
        el("progress", undefined, {
          max: "100",
          value: String(b.percent ?? 0),
          "aria-label": `backfill ${b.stream} progress`,
        }),
        el("span", ` ${percentText(b.percent)}`, { class: "percent" }),
      );
      const action = el("td", undefined, { "data-label": "Action" });
      if (b.status === "pending" || b.status === "running") {
        const cancel = el("button", "Cancel", { type: "button" });
        cancel.addEventListener("click", () => cancelBackfill(b.id));
        action.append(cancel);
      }
      tr.append(
        cell("Stream", b.stream),
        cell("Range", `${b.range_start.slice(0, 10)} – ${b.range_end.slice(0, 10)}`),
        statusCell(b.status),
        progress,
        cell("Records", b.records_count),
        cell("Error", b.last_error, "error-text"),
        action,
      );
      return tr;
    }),
  );

  $("#errors-empty").hidden = data.errors.length > 0;
  $("#errors").replaceChildren(
    ...data.errors.map((r) => {
      const li = el("li");
      li.append(
        el("time", relative(r.started_at), { datetime: r.started_at, title: r.started_at }),
        el("span", ` ${r.kind}${r.stream ? ` ${r.stream}` : ""}: `),
        el("span", r.error, { class: "error-text" }),
        ...(r.hint ? [el("p", `What to do: ${r.hint}`, { class: "hint" })] : []),
      );
      return li;
    }),
  );

  fill(
    $("#runs tbody"),
    data.runs.map((r) => {
      const tr = el("tr");
      tr.append(
        cell("Kind", r.kind),
        cell("Stream", r.stream),
        statusCell(r.status),
        timeCell("Started", r.started_at),
        cell("Added", r.added),
        cell("Updated", r.updated),
        cell("Error", r.error, "error-text"),
      );
      return tr;
    }),
  );
  fill(
    $("#events tbody"),
    data.webhook_events.map((w) => {
      const tr = el("tr");
      tr.append(
        cell("Topic", w.topic),
        statusCell(w.status),
        cell("Attempts", w.attempts),
        timeCell("Received", w.received_at),
        cell("Error", w.last_error, "error-text"),
      );
      return tr;
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Actions

async function act(work, done) {
  problem("");
  try {
    const result = await work();
    if (done) show(done(result));
    return result;
  } catch (err) {
    if (err.message !== "signed out") problem(err.message);
    return undefined;
  }
}

async function cancelBackfill(id) {
  await act(
    () => api(`backfills/${id}/cancel`, { method: "POST", body: {} }),
    (r) =>
      r.status === "cancelled"
        ? "Backfill cancelled."
        : `The backfill had already ended (${r.status}).`,
  );
  if (detail) await showDetail(detail.id);
}

/** The picked dates as start_backfill's range: [from 00:00 UTC, the day after `to`), not past now. */
function backfillRange(from, to) {
  if (!from || !to) return { error: "Pick both dates." };
  if (from > to) return { error: "The start date must not be after the end date." };
  const today = new Date().toISOString().slice(0, 10);
  if (to > today) {
    return { error: "A backfill re-reads what already happened: end today or earlier." };
  }
  if (from < "2000-01-01") return { error: "Pick a start on or after 2000-01-01." };
  const end = new Date(`${to}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() + 1);
  const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);
  const iso = (d) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
  return { range_start: `${from}T00:00:00Z`, range_end: iso(end < now ? end : now) };
}

async function startBackfill(event) {
  event.preventDefault();
  const range = backfillRange($("#backfill-from").value, $("#backfill-to").value);
  if (range.error) return problem(range.error);
  const stream = $("#backfill-stream").value;
  await act(
    () => api(`connections/${detail.id}/backfills`, { method: "POST", body: { stream, ...range } }),
    () => `Backfill of ${stream} started.`,
  );
  await showDetail(detail.id);
}

async function startOAuth(providerName, body) {
  const r = await act(() => api(`oauth/${providerName}/start`, { method: "POST", body }));
  if (r && r.authorize_url) location.assign(r.authorize_url);
}

function oauthForms() {
  const box = $("#oauth-forms");
  box.replaceChildren();
  for (const p of config.providers.filter((x) => x.oauth)) {
    const form = el("form", undefined, { class: "oauth-form", "data-provider": p.provider });
    const fs = el("fieldset");
    fs.append(el("legend", p.name));
    const nameId = `oauth-${p.provider}-name`;
    fs.append(
      el("label", "Name", { for: nameId }),
      el("input", undefined, { id: nameId, name: "name", autocomplete: "off" }),
    );
    if (p.provider === "shopify") {
      const shopId = "oauth-shopify-shop";
      fs.append(
        el("label", "Shop domain (…myshopify.com)", { for: shopId }),
        el("input", undefined, {
          id: shopId,
          name: "shop",
          required: "",
          autocomplete: "off",
          placeholder: "your-shop.myshopify.com",
        }),
      );
    }
    fs.append(el("button", `Connect ${p.name}`, { type: "submit" }));
    form.append(fs);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body = {};
      for (const [k, v] of data.entries()) if (String(v).trim()) body[k] = String(v).trim();
      startOAuth(p.provider, body);
    });
    box.append(form);
  }
  $("#token-provider").replaceChildren(
    ...config.providers.filter((x) => !x.oauth).map((x) =>
      el("option", x.name, { value: x.provider })
    ),
  );
}

function parseJsonField(text, what) {
  if (!text.trim()) return {};
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error();
    return v;
  } catch {
    throw new Error(`${what} must be a JSON object`);
  }
}

async function connectWithToken(event) {
  event.preventDefault();
  const form = event.target;
  const r = await act(() => {
    const body = {
      provider: form.provider.value,
      external_id: form.external_id.value.trim(),
      name: form.name.value.trim(),
      credentials: parseJsonField(form.credentials.value, "Credentials"),
      config: parseJsonField(form.config.value, "Config"),
    };
    return api("connections", { method: "POST", body });
  }, (r) => `Connected: ${r.name}.`);
  form.credentials.value = ""; // never kept on the page
  if (r) location.hash = `#/connections/${r.connection_id}`;
}

async function reconnect() {
  if (!detail) return;
  if (provider(detail.provider).oauth) {
    await startOAuth(detail.provider, { connection_id: detail.id });
  } else {
    location.hash = "#/connect";
    const form = $("#token-form");
    form.provider.value = detail.provider;
    form.external_id.value = detail.external_id;
    form.name.value = detail.name;
    form.credentials.focus();
    show(`Enter new credentials for ${detail.name} to reconnect it.`);
  }
}

function disconnect(event) {
  event.preventDefault();
  $("#disconnect-confirm").hidden = false;
  $("#disconnect-confirm").focus();
}

async function confirmDisconnect() {
  const deleteRecords = $("#delete-records").checked;
  const r = await act(
    () =>
      api(`connections/${detail.id}/disconnect`, {
        method: "POST",
        body: { delete_records: deleteRecords, revoke: true },
      }),
    () => `Disconnecting ${detail.name}: it shows as disabled once done.`,
  );
  $("#disconnect-confirm").hidden = true;
  if (r) location.hash = "#/";
}

async function localSignIn(user) {
  const r = await act(() => api("local-sign-in", { method: "POST", body: { user } }));
  if (!r) return;
  saveSession(r.access_token, r.expires_in);
  show("Signed in.");
  await route();
  $("#main").focus();
}

async function passwordSignIn(event) {
  event.preventDefault();
  const form = event.target;
  const r = await act(async () => {
    const res = await fetch(`${config.supabase_url}/auth/v1/token?grant_type=password`, {
      method: "POST",
      headers: { apikey: config.anon_key, "content-type": "application/json" },
      body: JSON.stringify({ email: form.email.value, password: form.password.value }),
      credentials: "omit",
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error_description || data.msg || "Sign-in refused.");
    return data;
  });
  form.password.value = "";
  if (!r) return;
  saveSession(r.access_token, r.expires_in);
  await route();
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  try {
    const res = await fetch(API + "config", { credentials: "omit" });
    config = await res.json();
  } catch {
    return problem("The console's API is not answering.");
  }
  oauthForms();
  for (const b of document.querySelectorAll("#local-sign-in button")) {
    b.addEventListener("click", () => localSignIn(b.dataset.user));
  }
  $("#password-form").addEventListener("submit", passwordSignIn);
  $("#sign-out").addEventListener("click", () => signOut());
  $("#backfill-form").addEventListener("submit", startBackfill);
  $("#token-form").addEventListener("submit", connectWithToken);
  $("#reconnect").addEventListener("click", reconnect);
  $("#disconnect-form").addEventListener("submit", disconnect);
  $("#disconnect-confirm").addEventListener("click", confirmDisconnect);
  addEventListener("hashchange", () => {
    detail = null;
    show("");
    route();
  });
  await route();
}

start();
