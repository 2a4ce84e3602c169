// The front page: the public list for everyone (live, searchable, each card a
// link to its petition's page); signed in, "My petitions" and filing; for
// the office (moderators and admins), the dashboard with its queues, and for
// admins also its people and audit log. All kept live over WebSockets.

import { api, checkSession, listAll } from "api.js";
import { Feed } from "feed.js";
import { dashboardView } from "dashboard.js";
import { peopleView } from "people.js";
import { fraudPanel } from "fraud_panel.js";
import {
  clearErrors, describe, fillCard, newCard, petitionPath, reconcile, setText, showErrors, showMessage,
  signatureCount, statusLabel,
} from "render.js";
import { SignInDialog, can, config, notice, renderConnection, showAccount, signOutOnServer } from "session.js";

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  petitions: new Map(), // petition_id -> freshest petition seen (HTTP or socket)
  counts: new Map(), // petition_id -> latest count from the feeds (newer than any petition's own)
  boundary: 0, // the public list covers every petition with an id >= boundary
  nextCursor: null,
  filter: "",
  query: "",
  mine: [],
  signed: new Set(), // petition ids this user has signed, as the server last said
  signedChanges: 0, // bumped by each sign / withdraw answer, so an older fetched list cannot undo it
  greeted: false, // the public feed said hello once since sign-in: later hellos are resumes
  feeds: [],
  needsList: true,
  loadToken: 0,
};
const dialog = new SignInDialog();
const dashboard = dashboardView({ state, applyPetition, display, scheduleRender, notice });
const people = peopleView({ notice });
const fraud = fraudPanel();

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

/** The freshest copy of `petition`, with the latest count the feeds brought. */
function display(petition) {
  const stored = state.petitions.get(petition.petition_id);
  const fresh = isFresher(petition, stored) ? petition : stored;
  const count = state.counts.get(fresh.petition_id);
  return count === undefined || count === fresh.signature_count ? fresh : { ...fresh, signature_count: count };
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    if (isOffice()) {
      dashboard.render();
    } else {
      if (state.user) renderMine();
      renderPublic();
    }
  });
}

// The office's page (the dashboard on the admin feed) rather than the citizen's.
const isOffice = () => can(state.user, "dashboard");

// -- live feeds -----------------------------------------------------------------

function startFeeds() {
  const common = {
    onState: () => renderConnection(state.feeds),
  };
  // Signed out, the public feed is anonymous: there is no session to lose, so it only reconnects.
  const signedIn = state.user
    ? {
      onAuthLost: () => signOutOnServer().then(() => signedOut("Your session has ended. Sign in again to continue.")),
      onForbidden: roleChanged,
      checkSession,
    }
    : {};
  if (isOffice()) {
    state.feeds = [new Feed({ ...common, ...signedIn, name: "admin", path: "/ws/admin", onMessage: onEventMessage })];
  } else {
    state.feeds = [new Feed({ ...common, ...signedIn, name: "public", path: "/ws/petitions", onMessage: onEventMessage })];
    if (state.user) {
      const path = `/ws/petitions/my/${state.user.user_id}`;
      state.feeds.unshift(new Feed({ ...common, ...signedIn, name: "mine", path, onMessage: onMineMessage }));
    }
  }
  for (const feed of state.feeds) feed.start();
}

/** A feed closed with 4403: the user's role changed; show the page their role allows now. */
async function roleChanged() {
  try {
    const user = await api.me();
    start(user);
    notice(`Your role is now ${user.role}.`);
  } catch {
    signedOut("Your session has ended. Sign in again to continue.");
  }
}

function stopFeeds() {
  for (const feed of state.feeds) feed.stop();
  state.feeds = [];
  renderConnection(state.feeds);
}

function onMineMessage(message) {
  if (message.type !== "update") return;
  state.mine = message.petitions;
  for (const petition of message.petitions) {
    applyPetition(petition);
    state.counts.delete(petition.petition_id); // the whole list is as of this message
  }
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
    if (state.greeted) {
      loadSignatures();
      dashboard.resumed();
    }
    state.greeted = true;
  } else if (message.type === "reset") {
    // We were away longer than the server's log remembers: start over from HTTP.
    state.petitions.clear();
    state.counts.clear();
    state.needsList = false;
    loadList();
    loadSignatures();
    dashboard.resumed();
  } else if (message.type === "counts") {
    for (const [id, count] of Object.entries(message.counts)) state.counts.set(Number(id), count);
    scheduleRender();
  } else if (message.type === "alert") {
    fraud.message(message);
  } else if (message.type === "event") {
    applyPetition(message.petition);
    // Counts are flushed before every lifecycle event: the petition's own count is the latest.
    state.counts.set(message.petition.petition_id, message.petition.signature_count);
    dashboard.event(message);
    if (message.event === "status_changed") people.event();
    scheduleRender();
  }
}

// -- loading lists ----------------------------------------------------------------

async function loadList() {
  const token = ++state.loadToken;
  try {
    if (isOffice()) {
      const petitions = await listAll(null);
      if (token !== state.loadToken) return;
      for (const petition of petitions) applyPetition(petition);
      state.boundary = 0;
    } else {
      const page = await api.list(state.filter, null, 100, state.query);
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
  const token = state.loadToken;
  try {
    const page = await api.list(state.filter, state.nextCursor, 100, state.query);
    if (token === state.loadToken) acceptPage(page);
    scheduleRender();
  } catch (error) {
    notice(`Could not load more petitions: ${describe(error)}`);
  } finally {
    button.disabled = false;
  }
}

/** The words of a text as the server's search sees them: letters and digits, lower-cased, accents folded. */
function searchWords(text) {
  const folded = text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
  return folded.match(/[\p{L}\p{N}]+/gu) || [];
}

/** The list's search, as the API's `q` does it: every word, in any order, the last one also as a prefix. */
function matchesQuery(petition) {
  const wanted = searchWords(state.query);
  if (!wanted.length) return !state.query;
  const theirs = new Set(searchWords(`${petition.title} ${petition.description}`));
  const last = wanted.pop();
  return wanted.every((word) => theirs.has(word)) && [...theirs].some((word) => word.startsWith(last));
}

function searchChanged() {
  const query = $("search").value.trim();
  const filter = $("status-filter").value;
  if (query === state.query && filter === state.filter) return;
  state.query = query;
  state.filter = filter;
  state.boundary = Number.MAX_SAFE_INTEGER; // nothing shown until the new page is in
  state.nextCursor = null;
  $("load-more").hidden = true;
  scheduleRender();
  loadList();
}

// -- citizen views ----------------------------------------------------------------

function renderMine() {
  const mine = state.mine.map(display);
  $("mine-empty").hidden = mine.length > 0;
  reconcile($("mine-list"), mine, (p) => p.petition_id, newCard, (card, petition) => {
    fillCard(card, petition, { showAuthor: false });
  });
}

function renderPublic() {
  const petitions = [...state.petitions.values()]
    .filter((p) => (!state.filter || p.status === state.filter) && p.petition_id >= state.boundary && matchesQuery(p))
    .sort((a, b) => b.petition_id - a.petition_id)
    .map(display);
  const empty = $("all-empty");
  empty.hidden = petitions.length > 0 || state.boundary === Number.MAX_SAFE_INTEGER;
  setText(empty, state.query || state.filter ? "No petitions match." : "No petitions here yet.");
  reconcile($("all-list"), petitions, (p) => p.petition_id, publicCard, (card, petition) => {
    fillCard(card, petition);
    const button = card.querySelector("button.sign");
    button.hidden = !state.user;
    if (!state.user) return;
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
    const petition = await (withdrawing ? api.withdraw(id) : api.sign(id));
    applyPetition(petition);
    state.counts.set(id, petition.signature_count);
    setSigned(id, !withdrawing);
  } catch (error) {
    if (error.code === "already_signed") {
      setSigned(id, true);
      showMessage(message, "You had already signed this petition.", "info");
    } else if (error.code === "not_signed") {
      setSigned(id, false);
      showMessage(message, "Your signature was already withdrawn.", "info");
    } else if (error.code === "not_open") {
      showMessage(message, "This petition no longer takes signatures.", "info");
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

/** Ask the server which petitions this user signed (sign-in, resume, reset); the office gets no Sign buttons. */
async function loadSignatures() {
  if (!state.user || isOffice()) return;
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

// -- petitions like the one being filed ------------------------------------------------

const SIMILAR_DELAY_MS = 300;
let similarTimer = null;
let similarToken = 0;

/** As the title is typed (once it pauses), show the petitions that look like it. */
function titleTyped() {
  clearTimeout(similarTimer);
  const title = $("petition-title").value.trim();
  const token = ++similarToken;
  if (title.length < 3) {
    showSimilar([]);
    return;
  }
  similarTimer = setTimeout(async () => {
    try {
      const found = await api.similar(title);
      if (token === similarToken) showSimilar(found.petitions);
    } catch {
      // Only a hint: filing still works without it.
      if (token === similarToken) showSimilar([]);
    }
  }, SIMILAR_DELAY_MS);
}

function showSimilar(petitions) {
  const list = $("similar-list");
  list.replaceChildren(
    ...petitions.map((petition) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = petitionPath(petition.petition_id);
      link.textContent = petition.title;
      item.append(link, ` (${signatureCount(petition.signature_count)})`);
      return item;
    }),
  );
  $("similar").hidden = petitions.length === 0;
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
    ++similarToken;
    showSimilar([]);
    showMessage(done, `Filed “${petition.title}”. You will see every decision on it here, live.`, "info");
    scheduleRender();
  } catch (error) {
    showErrors(form, error);
  } finally {
    submit.disabled = false;
  }
}

// -- signing in and out -----------------------------------------------------------

async function askToSignIn(mode) {
  const user = await dialog.ask(mode);
  if (user) signedIn(user);
}

async function signOut() {
  stopFeeds();
  const problem = await signOutOnServer();
  signedOut(problem);
}

/** Show the page for `user` (null: signed out) and open the feeds it needs. */
function start(user) {
  stopFeeds();
  state.user = user;
  state.petitions.clear();
  state.counts.clear();
  state.mine = [];
  state.needsList = true;
  state.filter = "";
  state.query = "";
  state.signed = new Set();
  state.greeted = false;
  state.loadToken += 1;
  ++similarToken;
  showSimilar([]);
  dashboard.reset();
  people.reset(user);
  fraud.reset();
  showAccount(user);
  const office = isOffice();
  $("sections-nav").hidden = !user || office;
  $("dashboard").hidden = !office;
  $("citizen").hidden = !user || office;
  $("all").hidden = office;
  $("guest-intro").hidden = Boolean(user);
  $("status-filter").value = "";
  $("search").value = "";
  $("dashboard-filter").value = "";
  for (const list of ["mine-list", "all-list", "dashboard-list"]) $(list).replaceChildren();
  loadSignatures();
  startFeeds();
  scheduleRender();
}

function signedIn(user) {
  notice("");
  start(user);
  $("main").focus();
}

function signedOut(message) {
  start(null);
  notice(message);
}

// -- start ------------------------------------------------------------------------

function fillStatusOptions(select) {
  for (const status of config.statuses) select.append(new Option(statusLabel(status).toLowerCase(), status));
}

function applyLimits() {
  const limits = config.limits;
  $("petition-title").maxLength = limits.title_max;
  $("petition-description").maxLength = limits.description_max;
  $("petition-category").maxLength = limits.category_max;
  $("petition-location").maxLength = limits.location_max;
}

function boot() {
  // Earlier versions of this page kept signatures in localStorage; the server says now.
  try {
    for (const key of Object.keys(localStorage)) if (key.startsWith("petitions.signed.")) localStorage.removeItem(key);
  } catch {
    // storage disabled: nothing was kept
  }
  applyLimits();
  fillStatusOptions($("status-filter"));
  dashboard.boot();
  people.boot();
  fraud.boot();
  $("petition-form").addEventListener("submit", filePetition);
  $("petition-title").addEventListener("input", titleTyped);
  $("sign-out").addEventListener("click", signOut);
  $("open-signin").addEventListener("click", () => askToSignIn("signin"));
  $("open-register").addEventListener("click", () => askToSignIn("register"));
  $("intro-register").addEventListener("click", (event) => {
    event.preventDefault();
    askToSignIn("register");
  });
  $("load-more").addEventListener("click", loadMore);
  $("list-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    searchChanged();
  });
  $("status-filter").addEventListener("change", searchChanged);
  $("search").addEventListener("search", searchChanged); // the clear button of a search field
  window.addEventListener("online", () => {
    for (const feed of state.feeds) feed.nudge();
    renderConnection(state.feeds);
  });
  window.addEventListener("offline", () => renderConnection(state.feeds));
  start(config.user);
}

boot();
