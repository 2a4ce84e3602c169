// The page: sign-in, "My petitions", filing, the public list, and the admins'
// dashboard, all kept live over WebSockets without a reload.

import { api, ApiError, listAll } from "api.js";
import { Feed } from "feed.js";
import {
  clearErrors, describe, fillCard, formatTime, newCard, reconcile, setText, showErrors, showMessage, statusLabel,
} from "render.js";

const config = JSON.parse(document.getElementById("page-config").textContent);
const OPEN_STATUSES = new Set(["submitted", "under_review", "in_progress"]);
const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  petitions: new Map(), // petition_id -> freshest petition seen (HTTP or socket)
  boundary: 0, // the public list covers every petition with an id >= boundary
  nextCursor: null,
  filter: "",
  mine: [],
  signed: new Set(), // petition ids this user has signed, as the server last said
  signedChanges: 0, // bumped by each sign / withdraw answer, so an older fetched list cannot undo it
  greeted: false, // the public feed said hello once since sign-in: later hellos are resumes
  lastAction: new Map(), // petition_id -> the latest admin-feed event about it
  feeds: [],
  needsList: true,
  loadToken: 0,
};

// -- petitions store --------------------------------------------------------------

/** True when `candidate` is at least as new as `current` (version first, then updated_at). */
function isFresher(candidate, current) {
  if (!current) return true;
  if (candidate.version !== current.version) return candidate.version > current.version;
  return candidate.updated_at >= current.updated_at;
}

function applyPetition(petition) {
  if (isFresher(petition, state.petitions.get(petition.petition_id))) {
    state.petitions.set(petition.petition_id, petition);
  }
}

function freshest(petition) {
  const stored = state.petitions.get(petition.petition_id);
  return isFresher(petition, stored) ? petition : stored;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    if (!state.user) return;
    if (isAdmin()) {
      renderDashboard();
    } else {
      renderMine();
      renderPublic();
    }
  });
}

const isAdmin = () => state.user && state.user.role === "admin";

// -- live feeds -----------------------------------------------------------------

function startFeeds() {
  const common = {
    onState: renderConnection,
    onAuthLost: () => signedOut("Your session has ended. Sign in again to continue."),
    checkSession,
  };
  if (isAdmin()) {
    state.feeds = [new Feed({ ...common, name: "admin", path: "/ws/admin", onMessage: onEventMessage })];
  } else {
    state.feeds = [
      new Feed({ ...common, name: "mine", path: `/ws/petitions/my/${state.user.user_id}`, onMessage: onMineMessage }),
      new Feed({ ...common, name: "public", path: "/ws/petitions", onMessage: onEventMessage }),
    ];
  }
  for (const feed of state.feeds) feed.start();
}

function stopFeeds() {
  for (const feed of state.feeds) feed.stop();
  state.feeds = [];
  renderConnection();
}

async function checkSession() {
  try {
    await api.me();
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

function onMineMessage(message) {
  if (message.type !== "update") return;
  state.mine = message.petitions;
  for (const petition of message.petitions) applyPetition(petition);
  scheduleRender();
}

function onEventMessage(message) {
  if (message.type === "hello") {
    // A fresh connection (no ?since) says where it starts: load the list from there.
    if (state.needsList) {
      state.needsList = false;
      loadList();
    }
    // Events do not say who signed: after a resume, ask which signatures are ours now.
    if (state.greeted) loadSignatures();
    state.greeted = true;
  } else if (message.type === "reset") {
    // We were away longer than the server's log remembers: start over from HTTP.
    state.petitions.clear();
    state.needsList = false;
    loadList();
    loadSignatures();
  } else if (message.type === "event") {
    applyPetition(message.petition);
    // The dashboard shows who last moved each petition (and their note); signatures only move the count.
    if (message.actor && (message.event === "created" || message.event === "status_changed")) {
      state.lastAction.set(message.petition.petition_id, message);
    }
    scheduleRender();
  } else if (message.type === "counts") {
    // Signatures arrive as the latest count of each petition that changed, once a tick.
    for (const [id, count] of Object.entries(message.counts)) {
      const petition = state.petitions.get(Number(id));
      if (petition) petition.signature_count = count;
    }
    scheduleRender();
  }
}

function renderConnection() {
  const states = state.feeds.map((feed) => feed.state);
  let overall = "offline";
  let text = "Offline";
  if (!navigator.onLine || states.length === 0) {
    overall = "offline";
    text = state.user ? "Offline" : "Not signed in";
  } else if (states.every((s) => s === "connected")) {
    overall = "connected";
    text = "Live";
  } else if (states.some((s) => s === "reconnecting")) {
    overall = "reconnecting";
    text = "Reconnecting…";
  } else {
    overall = "connecting";
    text = "Connecting…";
  }
  const indicator = $("connection");
  indicator.dataset.state = overall;
  setText(indicator.querySelector(".connection-text"), text);
}

// -- loading lists ----------------------------------------------------------------

async function loadList() {
  const token = ++state.loadToken;
  try {
    if (isAdmin()) {
      const petitions = await listAll(null);
      if (token !== state.loadToken) return;
      for (const petition of petitions) applyPetition(petition);
      state.boundary = 0;
    } else {
      const page = await api.list(state.filter, null);
      if (token !== state.loadToken) return;
      acceptPage(page);
    }
    scheduleRender();
  } catch (error) {
    if (token !== state.loadToken) return;
    notice(`Could not load petitions: ${describe(error)}`);
    // Try again on the next hello (after a reconnect) rather than in a loop.
    state.needsList = true;
  }
}

function acceptPage(page) {
  for (const petition of page.petitions) applyPetition(petition);
  state.nextCursor = page.next_cursor;
  state.boundary = page.next_cursor ? page.petitions[page.petitions.length - 1].petition_id : 0;
  $("load-more").hidden = !page.next_cursor;
}

async function loadMore() {
  if (!state.nextCursor) return;
  const button = $("load-more");
  button.disabled = true;
  try {
    acceptPage(await api.list(state.filter, state.nextCursor));
    scheduleRender();
  } catch (error) {
    notice(`Could not load more petitions: ${describe(error)}`);
  } finally {
    button.disabled = false;
  }
}

// -- citizen views ----------------------------------------------------------------

function renderMine() {
  const mine = state.mine.map(freshest);
  $("mine-empty").hidden = mine.length > 0;
  reconcile($("mine-list"), mine, (p) => p.petition_id, newCard, (card, petition) => {
    fillCard(card, petition, { showAuthor: false });
  });
}

function renderPublic() {
  const petitions = [...state.petitions.values()]
    .filter((p) => (!state.filter || p.status === state.filter) && p.petition_id >= state.boundary)
    .sort((a, b) => b.petition_id - a.petition_id);
  $("all-empty").hidden = petitions.length > 0;
  reconcile($("all-list"), petitions, (p) => p.petition_id, publicCard, (card, petition) => {
    fillCard(card, petition);
    const button = card.querySelector("button.sign");
    const signed = state.signed.has(petition.petition_id);
    setText(button, signed ? "Withdraw signature" : "Sign");
    button.setAttribute("aria-label", `${signed ? "Withdraw your signature from" : "Sign"}: ${petition.title}`);
    button.classList.toggle("button-quiet", signed);
  });
}

function publicCard() {
  const card = newCard();
  const button = document.createElement("button");
  button.type = "button";
  button.className = "sign";
  button.addEventListener("click", () => toggleSignature(card));
  card.querySelector(".card-actions").append(button);
  return card;
}

async function toggleSignature(card) {
  const id = Number(card.dataset.petitionId);
  const button = card.querySelector("button.sign");
  const message = card.querySelector(".card-message");
  const withdrawing = state.signed.has(id);
  button.disabled = true;
  showMessage(message, "");
  try {
    applyPetition(await (withdrawing ? api.withdraw(id) : api.sign(id)));
    setSigned(id, !withdrawing);
  } catch (error) {
    if (error.code === "already_signed") {
      setSigned(id, true);
      showMessage(message, "You had already signed this petition.", "info");
    } else if (error.code === "not_signed") {
      setSigned(id, false);
      showMessage(message, "Your signature was already withdrawn.", "info");
    } else {
      showMessage(message, describe(error));
    }
  } finally {
    button.disabled = false;
    scheduleRender();
  }
}

function setSigned(id, signed) {
  if (signed) state.signed.add(id);
  else state.signed.delete(id);
  state.signedChanges += 1;
}

/** Ask the server which petitions this user signed (sign-in, resume, reset); admins get no Sign buttons. */
async function loadSignatures() {
  if (!state.user || isAdmin()) return;
  const { user, signedChanges } = state;
  try {
    const { petition_ids: ids } = await api.mySignatures();
    if (user !== state.user) return;
    // A sign or withdraw answered meanwhile may be newer than this list: ask again.
    if (signedChanges !== state.signedChanges) return loadSignatures();
    state.signed = new Set(ids);
    scheduleRender();
  } catch (error) {
    // A 401 is the feeds' to handle (back to sign-in); anything else waits for the next resume.
    if (user === state.user && error.status !== 401) notice(`Could not load your signatures: ${describe(error)}`);
  }
}

async function filePetition(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const done = form.querySelector(".form-done");
  clearErrors(form);
  showMessage(done, "");
  const fields = {};
  for (const name of ["title", "description", "category", "location"]) {
    const value = form.elements.namedItem(name).value.trim();
    if (value || name === "title" || name === "description") fields[name] = value;
  }
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const petition = await api.file(fields);
    applyPetition(petition);
    if (!state.mine.some((p) => p.petition_id === petition.petition_id)) state.mine = [petition, ...state.mine];
    form.reset();
    showMessage(done, `Filed “${petition.title}”. You will see every decision on it here, live.`, "info");
    scheduleRender();
  } catch (error) {
    showErrors(form, error);
  } finally {
    submit.disabled = false;
  }
}

// -- admin dashboard --------------------------------------------------------------

function dashboardOrder(a, b) {
  const aOpen = OPEN_STATUSES.has(a.status);
  const bOpen = OPEN_STATUSES.has(b.status);
  if (aOpen !== bOpen) return aOpen ? -1 : 1;
  if (aOpen) return a.submitted_at.localeCompare(b.submitted_at) || a.petition_id - b.petition_id;
  return b.updated_at.localeCompare(a.updated_at) || b.petition_id - a.petition_id;
}

function renderDashboard() {
  const petitions = [...state.petitions.values()]
    .filter((p) => !state.filter || (state.filter === "open" ? OPEN_STATUSES.has(p.status) : p.status === state.filter))
    .sort(dashboardOrder);
  $("dashboard-empty").hidden = petitions.length > 0;
  reconcile($("dashboard-list"), petitions, (p) => p.petition_id, dashboardCard, updateDashboardCard);
}

function dashboardCard() {
  const card = newCard();
  card.classList.add("card-admin");
  const activity = document.createElement("p");
  activity.className = "card-activity";
  activity.hidden = true;
  card.querySelector(".card-actions").before(activity);
  const form = document.createElement("form");
  form.className = "decision";
  form.noValidate = true;
  form.innerHTML = `
    <div class="field">
      <label><span class="note-label">Note to the author</span></label>
      <textarea name="note" rows="2"></textarea>
      <p class="field-error" data-error-for="note" hidden></p>
    </div>
    <div class="field reason-field" hidden>
      <label><span>Reason, if rejected</span></label>
      <select name="reason"></select>
      <p class="field-error" data-error-for="reason" hidden></p>
    </div>
    <p class="form-error" data-error-for="form" role="alert" hidden></p>
    <div class="moves" role="group"></div>`;
  form.addEventListener("submit", (event) => event.preventDefault());
  card.querySelector(".card-actions").after(form);
  return card;
}

function updateDashboardCard(card, petition) {
  fillCard(card, petition);
  const id = petition.petition_id;
  const waiting = OPEN_STATUSES.has(petition.status) ? ` · waiting since ${formatTime(petition.submitted_at)}` : "";
  setText(card.querySelector(".card-meta"), `#${id} by ${petition.author.name}${waiting}`);
  const form = card.querySelector("form.decision");
  const note = form.elements.namedItem("note");
  if (!note.id) {
    note.id = `note-${id}`;
    form.querySelector("label").htmlFor = note.id;
    form.querySelector('[data-error-for="note"]').id = `note-${id}-error`;
    form.querySelector(".moves").setAttribute("aria-label", `Move petition ${id} to`);
    note.maxLength = config.limits.note_max;
    const reason = form.elements.namedItem("reason");
    reason.id = `reason-${id}`;
    form.querySelector(".reason-field label").htmlFor = reason.id;
    reason.replaceChildren(
      ...config.rejection_reasons.map((code) => {
        const option = document.createElement("option");
        option.value = code;
        option.textContent = code.replaceAll("_", " ");
        option.selected = code === config.default_rejection_reason;
        return option;
      }),
    );
  }
  form.querySelector(".reason-field").hidden = !(config.transitions[petition.status] || []).includes("rejected");
  const needsNote = (config.transitions[petition.status] || []).some((s) => config.note_required.includes(s));
  setText(form.querySelector(".note-label"), needsNote ? "Note to the author (required to reject)" : "Note to the author");
  const activity = card.querySelector(".card-activity");
  const last = state.lastAction.get(id);
  activity.hidden = !last;
  if (last) setText(activity, describeAction(last));
  // Rebuild the buttons only when the status changed, so a focused button keeps its focus.
  const moves = form.querySelector(".moves");
  if (moves.dataset.status !== petition.status) {
    moves.dataset.status = petition.status;
    moves.replaceChildren(
      ...(config.transitions[petition.status] || []).map((target) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.target = target;
        button.className = target === "rejected" ? "button-danger" : "";
        button.textContent = moveLabel(petition.status, target);
        button.addEventListener("click", () => move(card, target));
        return button;
      }),
    );
    if (!moves.children.length) moves.textContent = "No further moves.";
  }
  // A message about an earlier state (e.g. "Moved to under review.") goes once the petition moves on.
  const message = card.querySelector(".card-message");
  if (!message.hidden && message.dataset.version !== String(petition.version)) showMessage(message, "");
  // The version this admin is looking at: a PATCH from a stale view gets a 409, not a silent overwrite.
  card.dataset.version = String(petition.version);
}

function moveLabel(from, target) {
  if (target === "rejected") return "Reject";
  if (from === "resolved" && target === "in_progress") return "Reopen";
  if (from === "rejected" && target === "under_review") return "Reconsider";
  return `Move to ${statusLabel(target).toLowerCase()}`;
}

function describeAction(event) {
  const who = event.actor ? event.actor.name : "someone";
  const when = formatTime(event.at);
  switch (event.event) {
    case "created":
      return `Filed by ${who}, ${when}`;
    case "status_changed":
      return `${statusLabel(event.from_status)} → ${statusLabel(event.to_status)} by ${who}, ${when}` +
        (event.note ? `: “${event.note}”` : "");
    case "milestone":
      return `Reached the ${event.milestone} threshold, ${when}`;
    default:
      return "";
  }
}

async function move(card, target) {
  const id = Number(card.dataset.petitionId);
  const version = Number(card.dataset.version);
  const form = card.querySelector("form.decision");
  const note = form.elements.namedItem("note");
  const message = card.querySelector(".card-message");
  clearErrors(form);
  showMessage(message, "");
  const text = note.value.trim();
  if (config.note_required.includes(target) && !text) {
    showErrors(form, { fields: { note: `is required to move to ${statusLabel(target).toLowerCase()}` } });
    return;
  }
  const buttons = form.querySelectorAll(".moves button");
  for (const button of buttons) button.disabled = true;
  try {
    const reason = form.elements.namedItem("reason").value;
    const petition = await api.move(id, target, text, version, reason);
    applyPetition(petition);
    note.value = "";
    showMessage(message, `Moved to ${statusLabel(petition.status).toLowerCase()}.`, "info");
    message.dataset.version = String(freshest(petition).version);
  } catch (error) {
    if (error.code === "version_conflict" || error.code === "invalid_transition") {
      await refreshPetition(id);
      const fresh = state.petitions.get(id);
      const now = fresh ? ` It is now ${statusLabel(fresh.status).toLowerCase()}.` : "";
      showMessage(
        message,
        `Someone else changed this petition first, so your change was not made.${now} ` +
          "Check it and choose again; your note is kept.",
      );
      if (fresh) message.dataset.version = String(fresh.version);
    } else {
      showErrors(form, error);
    }
  } finally {
    for (const button of buttons) button.disabled = false;
    scheduleRender();
  }
}

async function refreshPetition(id) {
  try {
    applyPetition(await api.petition(id));
  } catch (error) {
    notice(`Could not reload petition ${id}: ${describe(error)}`);
  }
}

// -- signing in and out -----------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  try {
    const { user } = await api.login(form.elements.namedItem("email").value.trim(), form.elements.namedItem("password").value);
    form.reset();
    signedIn(user);
  } catch (error) {
    showErrors(form, error);
  }
}

async function register(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const value = (name) => form.elements.namedItem(name).value;
  try {
    const { user } = await api.register(value("name").trim(), value("email").trim(), value("password"));
    form.reset();
    signedIn(user);
  } catch (error) {
    showErrors(form, error);
  }
}

async function signOut() {
  stopFeeds();
  try {
    await api.logout();
  } catch (error) {
    if (!(error instanceof ApiError)) {
      notice("Signed out on this page, but the server could not be told; the session ends when it expires.");
    }
  }
  signedOut("");
}

function signedIn(user) {
  state.user = user;
  state.petitions.clear();
  state.mine = [];
  state.lastAction.clear();
  state.needsList = true;
  state.filter = "";
  state.signed = new Set();
  state.greeted = false;
  loadSignatures();
  notice("");
  $("signin").hidden = true;
  $("account").hidden = false;
  setText($("account-name"), `${user.name}${isAdmin() ? " (admin)" : ""}`);
  $("sections-nav").hidden = isAdmin();
  $("dashboard").hidden = !isAdmin();
  $("citizen").hidden = isAdmin();
  $("all").hidden = isAdmin();
  $("status-filter").value = "";
  $("dashboard-filter").value = "";
  for (const list of ["mine-list", "all-list", "dashboard-list"]) $(list).replaceChildren();
  startFeeds();
  scheduleRender();
  $("main").focus();
}

function signedOut(message) {
  stopFeeds();
  state.user = null;
  state.petitions.clear();
  state.mine = [];
  state.signed = new Set();
  state.loadToken += 1;
  for (const id of ["account", "sections-nav", "dashboard", "citizen", "all"]) $(id).hidden = true;
  $("signin").hidden = false;
  notice(message);
  renderConnection();
  $("login-email").focus();
}

function notice(text) {
  showMessage($("notice"), text, "error");
}

// -- start ------------------------------------------------------------------------

function fillStatusOptions(select, extra) {
  for (const [value, label] of extra) select.append(new Option(label, value));
  for (const status of config.statuses) select.append(new Option(statusLabel(status).toLowerCase(), status));
}

function applyLimits() {
  const limits = config.limits;
  $("petition-title").maxLength = limits.title_max;
  $("petition-description").maxLength = limits.description_max;
  $("petition-category").maxLength = limits.category_max;
  $("petition-location").maxLength = limits.location_max;
  $("register-name").maxLength = limits.name_max;
  setText($("register-password-hint"), `At least ${limits.password_min} characters.`);
}

async function boot() {
  // Earlier versions of this page kept signatures in localStorage; the server says now.
  try {
    for (const key of Object.keys(localStorage)) if (key.startsWith("petitions.signed.")) localStorage.removeItem(key);
  } catch {
    // storage disabled: nothing was kept
  }
  applyLimits();
  fillStatusOptions($("status-filter"), []);
  fillStatusOptions($("dashboard-filter"), [["open", "waiting for a decision"]]);
  $("login-form").addEventListener("submit", login);
  $("register-form").addEventListener("submit", register);
  $("petition-form").addEventListener("submit", filePetition);
  $("sign-out").addEventListener("click", signOut);
  $("load-more").addEventListener("click", loadMore);
  $("status-filter").addEventListener("change", (event) => {
    state.filter = event.target.value;
    state.boundary = Number.MAX_SAFE_INTEGER; // nothing shown until the new page is in
    scheduleRender();
    loadList();
  });
  $("dashboard-filter").addEventListener("change", (event) => {
    state.filter = event.target.value;
    scheduleRender();
  });
  window.addEventListener("online", () => {
    for (const feed of state.feeds) feed.nudge();
    renderConnection();
  });
  window.addEventListener("offline", renderConnection);
  for (;;) {
    try {
      signedIn(await api.me());
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        signedOut("");
        return;
      }
      notice("The server cannot be reached right now; trying again…");
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
}

boot();
