// The notification-hub demo: plain JavaScript against the hub's public API and its
// ActionCable socket (/cable, protocol actioncable-v1-json), as a product frontend would.
// One file (about 480 lines) on purpose: the page has no build step, and a product team reads
// it top to bottom as the example of a whole client (sign-in, tokens, socket, inbox).
"use strict";

// The hub's /demo/config.js names the page's product and says whether it runs in development,
// where `?product=` may pick another product and development's hints and controls show.
const config = window.HUB_DEMO || { product: "demo", development: false };
const product =
  (config.development && new URLSearchParams(location.search).get("product")) || config.product;
const PAGE_SIZE = 50;
const storageKey = `notification-hub-demo:${product}`;
const identifier = JSON.stringify({ channel: "NotificationsChannel" });
const $ = (id) => document.getElementById(id);

let session = JSON.parse(localStorage.getItem(storageKey) || "null"); // tokens + user + org
let loginToken = null; // while choosing an organization
let socket = null;
let reconnectDelay = 500;
let reconnectTimer = null;
const notifications = new Map(); // id → notification, newest first when rendered
let lastSeenId = 0;
let nextCursor = null; // of the oldest page loaded; null once the list is complete

// -- HTTP ---------------------------------------------------------------------------------

async function api(method, path, body, { auth = false, retried = false } = {}) {
  const headers = { "X-Product-Slug": product, "Accept-Language": navigator.language || "en" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) headers.Authorization = `Bearer ${session.access_token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && auth && !retried && (await refreshSession())) {
    return api(method, path, body, { auth, retried: true });
  }
  const data = response.status === 204 ? {} : await response.json();
  if (!response.ok) {
    const error = new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    error.code = data.error && data.error.code;
    error.details = data.error && data.error.details; // field → {code, message} on a 422
    error.status = response.status;
    throw error;
  }
  return data;
}

async function refreshSession() {
  if (!session || !session.refresh_token) return false;
  try {
    const tokens = await api("POST", "/api/v1/auth/refresh", { refresh_token: session.refresh_token });
    saveSession({ ...session, ...tokens });
    return true;
  } catch (error) {
    signedOut(error.status === 401 ? "Your session ended; please log in again." : error.message);
    return false;
  }
}

function saveSession(next) {
  session = next;
  localStorage.setItem(storageKey, JSON.stringify(session));
}

function flash(message, isError = false) {
  const box = $("flash");
  box.textContent = message;
  box.className = isError ? "error" : "";
  box.hidden = !message;
}

// A message the user came for (the outcome of a mailed link): in view and focused, so that
// neither the eye nor a screen reader has to look for it.
function announce(message, isError = false) {
  flash(message, isError);
  $("flash").scrollIntoView({ block: "center" });
  $("flash").focus();
}

// -- signing in and out -------------------------------------------------------------------

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// Each invalid field gets its message right below it (a 422's `details`, or the client's own
// check); a field the form does not have (the link's token, say) is named in the flash.
function clearFieldErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}

function showFieldErrors(form, details) {
  const elsewhere = [];
  let first = null;
  for (const [name, detail] of Object.entries(details)) {
    const input = form.elements.namedItem(name);
    if (!(input instanceof HTMLInputElement)) {
      elsewhere.push(detail.message);
      continue;
    }
    const note = document.createElement("p");
    note.className = "field-error";
    note.id = `${form.id}-${name}-error`;
    note.dataset.field = name;
    note.textContent = detail.message;
    (input.closest("label") || input).after(note);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", note.id);
    first = first || input;
  }
  if (first) first.focus();
  return elsewhere;
}

function fieldError(name, message) {
  const error = new Error(message);
  error.details = { [name]: { code: "client", message } };
  return error;
}

// Checked here, so a mismatched pair is never sent.
function checkConfirmation(fields) {
  if (fields.password !== fields.password_confirmation) {
    throw fieldError("password_confirmation", "The two passwords differ: type the same one twice.");
  }
}

function onSubmit(id, handler) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    clearFieldErrors(form);
    try {
      await handler(formData(form), form);
    } catch (error) {
      const elsewhere = error.details ? showFieldErrors(form, error.details) : [];
      flash([error.message, ...elsewhere].join(" "), true);
    }
  });
}

function signedIn(answer) {
  if (answer.select_organization) {
    loginToken = answer.login_token;
    const choices = $("org-choices");
    choices.replaceChildren();
    for (const org of answer.organizations) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${org.name} (${org.role})`;
      button.addEventListener("click", () => chooseOrganization(org.id));
      choices.append(button);
    }
    $("org-form").hidden = false;
    flash("You belong to several organizations here: choose one.");
    return;
  }
  saveSession({
    access_token: answer.access_token,
    refresh_token: answer.refresh_token,
    user: answer.user,
    organization: answer.organization,
  });
  flash("");
  showSignedIn();
}

async function chooseOrganization(organizationId) {
  try {
    signedIn(await api("POST", "/api/v1/auth/login/select_org", {
      login_token: loginToken,
      organization_id: organizationId,
    }));
    $("org-form").hidden = true;
  } catch (error) {
    flash(error.message, true);
  }
}

function signedOut(message = "", isError = Boolean(message)) {
  localStorage.removeItem(storageKey);
  session = null;
  closeSocket();
  notifications.clear();
  lastSeenId = 0;
  nextCursor = null;
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  setConnection("offline");
  flash(message, isError);
}

onSubmit("register-form", async (fields) => {
  checkConfirmation(fields);
  signedIn(await api("POST", "/api/v1/auth/register", fields));
});

onSubmit("login-form", async (fields) => {
  signedIn(await api("POST", "/api/v1/auth/login", fields));
});

onSubmit("forgot-form", async (fields, form) => {
  const answer = await api("POST", "/api/v1/auth/forgot_password", fields);
  form.reset();
  const sent = answer.message || "If the address is registered, a reset link is on its way.";
  flash(config.development ? `${sent} (Without SMTP_URL the link is in the hub's log.)` : sent);
});

onSubmit("reset-form", async (fields, form) => {
  checkConfirmation(fields);
  const answer = await api("PUT", "/api/v1/auth/reset_password", {
    token: linkParams().get("reset_token"),
    ...fields,
  });
  forgetLink();
  form.reset();
  form.hidden = true;
  const message = answer.message || "Your password has been changed. Log in with the new password.";
  // The reset ended every session of the account, this page's too.
  if (session) signedOut(message, false);
  announce(message);
});

$("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/auth/logout", undefined, { auth: true });
  } finally {
    signedOut("Logged out.");
  }
});

// -- notifications ------------------------------------------------------------------------

function remember(items) {
  for (const item of items) {
    notifications.set(item.id, item);
    lastSeenId = Math.max(lastSeenId, item.id);
  }
}

function setBadge(count) {
  $("badge").textContent = String(count);
  $("badge").dataset.count = String(count);
}

function render() {
  const list = $("notifications");
  list.replaceChildren();
  const items = [...notifications.values()].sort((a, b) => b.id - a.id);
  for (const item of items) {
    const li = document.createElement("li");
    li.dataset.id = item.id;
    li.className = item.read ? "read" : "unread";
    const text = document.createElement("div");
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = item.title;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = [item.message, item.created_at].filter(Boolean).join(" · ");
    text.append(title, meta);
    li.append(text);
    if (!item.read) {
      const button = document.createElement("button");
      button.textContent = "Mark read";
      button.className = "mark-read";
      button.addEventListener("click", () => perform("mark_read", { id: item.id }));
      li.append(button);
    }
    list.append(li);
  }
  $("empty").hidden = items.length > 0;
  $("load-more").hidden = nextCursor === null;
}

async function loadNotifications() {
  const page = await api("GET", `/api/v1/notifications?limit=${PAGE_SIZE}`, undefined, { auth: true });
  notifications.clear();
  remember(page.notifications);
  nextCursor = page.next_cursor;
  setBadge(page.unread_count);
  render();
}

// The next (older) page, from the cursor of the last one.
$("load-more").addEventListener("click", async () => {
  const button = $("load-more");
  button.disabled = true;
  try {
    const query = `limit=${PAGE_SIZE}&cursor=${encodeURIComponent(nextCursor)}`;
    const page = await api("GET", `/api/v1/notifications?${query}`, undefined, { auth: true });
    remember(page.notifications);
    nextCursor = page.next_cursor;
    setBadge(page.unread_count);
    render();
  } catch (error) {
    flash(error.message, true);
  } finally {
    button.disabled = false;
  }
});

function onChannelMessage(message) {
  switch (message.action) {
    case "new_notification":
      remember([message.notification]);
      setBadge(message.unread_count);
      break;
    case "notification_read": {
      const item = notifications.get(message.id);
      if (item) item.read = true;
      setBadge(message.unread_count);
      break;
    }
    case "all_read":
      for (const item of notifications.values()) item.read = true;
      setBadge(message.unread_count);
      break;
    case "sync": // what arrived while the socket was down
      remember(message.notifications);
      setBadge(message.unread_count);
      if (message.has_more) perform("sync", { since: lastSeenId });
      break;
    case "error":
      flash(`${message.for}: ${message.code}`, true);
      return;
    default:
      return;
  }
  render();
}

$("send-test").addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/dev/test_notification", {}, { auth: true });
  } catch (error) {
    flash(error.status === 404 ? "Test notifications exist in development only." : error.message, true);
  }
});

$("mark-all").addEventListener("click", () => perform("mark_all_read"));

// -- the cable ----------------------------------------------------------------------------

function setConnection(state, detail = state) {
  $("connection").dataset.state = state;
  $("connection-label").textContent = detail;
}

function perform(action, data = {}) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    flash("Not connected; try again in a moment.", true);
    return;
  }
  socket.send(JSON.stringify({
    command: "message",
    identifier,
    data: JSON.stringify({ action, ...data }),
  }));
}

function closeSocket() {
  clearTimeout(reconnectTimer);
  if (socket) {
    socket.onclose = null;
    socket.close();
    socket = null;
  }
}

function scheduleReconnect() {
  clearTimeout(reconnectTimer);
  setConnection("connecting", `reconnecting in ${(reconnectDelay / 1000).toFixed(1)} s`);
  reconnectTimer = setTimeout(connect, reconnectDelay);
  reconnectDelay = Math.min(reconnectDelay * 2, 5000);
}

function connect() {
  if (!session) return;
  closeSocket();
  setConnection("connecting", "connecting");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/cable?token=${encodeURIComponent(session.access_token)}`;
  socket = new WebSocket(url, ["actioncable-v1-json"]);
  socket.onopen = () => {
    socket.send(JSON.stringify({ command: "subscribe", identifier }));
  };
  socket.onmessage = async (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "welcome") {
      setConnection("connected", "connected");
      reconnectDelay = 500;
    } else if (data.type === "ping") {
      setConnection("connected", `connected · ping ${new Date(data.message * 1000).toLocaleTimeString()}`);
    } else if (data.type === "confirm_subscription") {
      perform("sync", { since: lastSeenId }); // catch up on anything missed while away
    } else if (data.type === "disconnect") {
      if (data.reason === "token_expired") {
        if (await refreshSession()) connect();
      } else if (data.reason === "unauthorized") {
        signedOut("Your session ended; please log in again.");
      } else {
        setConnection("offline", `disconnected: ${data.reason}`);
      }
    } else if (data.message) {
      onChannelMessage(JSON.parse(data.message));
    }
  };
  socket.onclose = () => {
    socket = null;
    if (session) scheduleReconnect();
  };
}

async function showSignedIn() {
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("user-email").textContent = session.user ? session.user.email : "";
  $("org-name").textContent = session.organization ? session.organization.name : "";
  try {
    await loadNotifications();
  } catch (error) {
    if (!session) return; // the refresh failed and signed us out
    flash(error.message, true);
  }
  connect();
}

// -- mailed links -------------------------------------------------------------------------

// A reset or verification link (`#reset_token=…`, `#verify_token=…`, as the hub mails them
// when the product has no link template of its own) works signed in or out.
function linkParams() {
  return new URLSearchParams(location.hash.slice(1));
}

function forgetLink() {
  history.replaceState(null, "", location.pathname + location.search);
}

function followLink() {
  const params = linkParams();
  if (params.get("reset_token")) {
    const form = $("reset-form");
    form.hidden = false;
    flash("Choose a new password for your account.");
    form.scrollIntoView({ block: "center" });
    form.elements.namedItem("password").focus();
  }
  const verifyToken = params.get("verify_token");
  if (verifyToken) {
    forgetLink(); // one use: a reload must not send it again
    flash("Confirming your email address…");
    api("POST", "/api/v1/auth/verify_email", { token: verifyToken })
      .then((answer) => announce(answer.message || "Your email address is confirmed."))
      .catch((error) => announce(error.message, true));
  }
}

// -- start --------------------------------------------------------------------------------

$("product-slug").textContent = product;
if (config.development) {
  for (const element of document.querySelectorAll(".dev-only")) element.hidden = false;
}
if (session) {
  showSignedIn();
} else {
  signedOut();
}
followLink(); // after the above, which clear the flash
window.addEventListener("hashchange", followLink); // a link opened in this tab
