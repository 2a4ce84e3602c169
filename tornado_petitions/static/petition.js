// One petition's page (/petitions/{id}): its text, status, response and
// history, the live count and the chart, kept live over the public feed
// (anonymous when signed out), and a Sign button that asks a signed-out
// visitor to sign in or register in place and then signs.

import { api, checkSession } from "api.js";
import { SignatureChart, bucketFor } from "chart.js";
import { Feed } from "feed.js";
import {
  describe, describeEvent, formatTime, joinParts, setParts, setText, showMessage, signatureCount, statusLabel, userText,
} from "render.js";
import { SignInDialog, config, notice, renderConnection, showAccount, signOutOnServer } from "session.js";

const OPEN_STATUSES = new Set(["submitted", "under_review", "in_progress"]);
const REASON_LABELS = {
  duplicate: "a duplicate of another petition",
  no_action: "not something the office can act on",
  irrelevant: "not about a matter the office deals with",
  offensive: "offensive",
  fake: "fake or a joke",
  already_happening: "already happening",
  other: "see the note",
};
const $ = (id) => document.getElementById(id);

const state = {
  user: config.user,
  petition: config.petition,
  count: config.petition.signature_count,
  signed: null, // true / false once known; null while unknown (signed out, or not yet asked)
  greeted: false,
  gone: false, // true once the petition answered 404: hidden since the page was rendered
  feed: null,
  historyToken: 0,
  timelineToken: 0,
};
const id = state.petition.petition_id;
const dialog = new SignInDialog();
const chart = new SignatureChart($("chart"), state.petition.submitted_at);

// -- rendering --------------------------------------------------------------------

/** Whether signing is open, as the server's rule has it (status, then closing time). */
function takesSignatures(petition) {
  if (!OPEN_STATUSES.has(petition.status)) return false;
  return !petition.closes_at || Date.parse(petition.closes_at) > Date.now();
}

function render() {
  const petition = state.petition;
  setText($("petition-title"), petition.title);
  const title = `${petition.title} · Petitions`;
  if (document.title !== title) document.title = title;
  const badge = $("petition-status");
  setText(badge, statusLabel(petition.status));
  badge.className = `badge badge-${petition.status}`;
  const meta = [["by ", userText(petition.author.name)]];
  if (petition.category) meta.push([userText(petition.category)]);
  if (petition.location) meta.push([userText(petition.location)]);
  meta.push([`filed ${formatTime(petition.submitted_at)}`]);
  if (petition.closes_at && takesSignatures(petition)) meta.push([`signing closes ${formatTime(petition.closes_at)}`]);
  if (petition.awaiting_response) meta.push(["awaiting the office's response"]);
  setParts($("petition-meta"), joinParts(meta));
  setText($("petition-description"), petition.description);
  $("petition-response").hidden = !petition.response;
  setText($("response-text"), petition.response || "");
  const reason = petition.status === "rejected" && petition.rejection && petition.rejection.reason;
  setText($("response-title"), reason ? `Rejected: ${REASON_LABELS[reason] || reason.replaceAll("_", " ")}` : "Response");
  renderCount();
  renderSignButton();
  renderPlaces(petition);
}

/** The by-country and by-region counts, most first. */
function renderPlaces(petition) {
  for (const [listId, counts] of [["by-country", petition.signatures_by_country], ["by-region", petition.signatures_by_region]]) {
    const list = $(listId);
    const items = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]).map(([place, count]) => {
      const item = document.createElement("li");
      item.dir = "auto";
      item.textContent = `${place}: ${count}`;
      return item;
    });
    list.replaceChildren(...items);
  }
}

function renderCount() {
  const [number, ...words] = signatureCount(state.count).split(" ");
  setText($("petition-count"), number);
  setText($("petition-count-label"), words.join(" "));
}

function renderSignButton() {
  const button = $("sign-button");
  const open = takesSignatures(state.petition);
  if (state.signed) {
    setText(button, "Withdraw my signature");
    button.classList.add("button-quiet");
  } else {
    setText(button, open ? "Sign this petition" : "Signing is closed");
    button.classList.remove("button-quiet");
  }
  button.disabled = button.dataset.busy === "1" || state.gone || (!open && !state.signed);
}

function setCount(count) {
  if (count === state.count) return;
  state.count = count;
  renderCount();
  chart.push(count);
}

// -- history and timeline ---------------------------------------------------------

async function loadHistory() {
  const token = ++state.historyToken;
  try {
    const { events } = await api.events(id);
    if (token !== state.historyToken) return;
    // Lifecycle events only: signatures are counted, not listed.
    const items = events.filter((event) => describeEvent(event).length).map((event) => {
      const item = document.createElement("li");
      item.className = `history-${event.event}`;
      setParts(item, describeEvent(event));
      return item;
    });
    $("history").replaceChildren(...items);
  } catch (error) {
    if (token === state.historyToken) notice(`Could not load the history: ${describe(error)}`);
  }
}

async function loadTimeline() {
  const token = ++state.timelineToken;
  try {
    const bucket = bucketFor(state.petition.submitted_at);
    const { points } = await api.timeline(id, bucket);
    if (token !== state.timelineToken) return;
    chart.setTimeline(points, state.count, bucket);
  } catch (error) {
    if (token !== state.timelineToken) return;
    // Without the past the chart still grows from now on.
    chart.setTimeline([], state.count);
    notice(`Could not load the signatures so far: ${describe(error)}`);
  }
}

async function reloadPetition() {
  try {
    acceptPetition(await api.petition(id));
  } catch (error) {
    if (error.status === 404) gone();
    else notice(`Could not reload the petition: ${describe(error)}`);
  }
}

/** The petition was hidden (or withdrawn from public view) since the page was rendered: the
 * public feed says nothing of it from then on, so a refetch or a signature answering 404 is how
 * the page learns. */
function gone() {
  state.gone = true;
  notice("This petition is no longer available.");
  renderSignButton();
}

/** A petition from an event, an answer or a reload: newer versions replace the shown one. */
function acceptPetition(petition) {
  if (petition.version >= state.petition.version) state.petition = petition;
  render();
}

// -- the feed ---------------------------------------------------------------------

function onMessage(message) {
  if (message.type === "hello" || message.type === "reset") {
    // First hello: the page as rendered may be a moment old. Later ones (a resume, or the
    // log moved past us): whatever happened meanwhile, the count included, is fetched again.
    const first = !state.greeted;
    state.greeted = true;
    if (first || message.type === "reset") {
      reloadPetition().then(loadTimeline);
      loadHistory();
    } else {
      // The resume already brought the lifecycle events and a counts frame; the timeline
      // and our own signature (another tab may have withdrawn it) are asked again.
      loadTimeline();
      loadSignature();
    }
  } else if (message.type === "counts") {
    const count = message.counts[String(id)];
    if (count !== undefined) setCount(count);
  } else if (message.type === "event" && message.petition.petition_id === id) {
    acceptPetition(message.petition);
    // Counts are flushed before every lifecycle event, so the event's count is the latest.
    setCount(message.petition.signature_count);
    loadHistory();
  }
}

function startFeed() {
  if (state.feed) state.feed.stop();
  const signedIn = state.user
    ? { onAuthLost: () => signOutOnServer().then(() => signedOut("Your session has ended. Sign in again to sign.")), checkSession }
    : {};
  state.feed = new Feed({
    name: "public",
    path: "/ws/petitions",
    onMessage,
    onState: () => renderConnection([state.feed]),
    ...signedIn,
  });
  state.feed.start();
}

// -- signing ------------------------------------------------------------------------

async function loadSignature() {
  if (!state.user) return;
  const user = state.user;
  try {
    const { petition_ids: ids } = await api.mySignatures();
    if (user !== state.user) return;
    state.signed = ids.includes(id);
    renderSignButton();
  } catch (error) {
    if (error.status !== 401) notice(`Could not load your signature: ${describe(error)}`);
  }
}

async function signClicked() {
  const message = $("sign-message");
  showMessage(message, "");
  if (!state.user && config.anonymous_signing) {
    const form = $("sign-email-form");
    form.hidden = false;
    form.elements.name.focus();
    return;
  }
  if (!state.user) {
    const user = await dialog.ask("register", `Sign in or create an account to sign “${state.petition.title}”.`);
    if (!user) {
      $("sign-button").focus();
      return;
    }
    signedIn(user);
  }
  await toggleSignature(state.signed ? "withdraw" : "sign");
  $("sign-button").focus();
}

async function signInInstead() {
  $("sign-email-form").hidden = true;
  const user = await dialog.ask("register", `Sign in or create an account to sign “${state.petition.title}”.`);
  if (!user) return;
  signedIn(user);
  await toggleSignature("sign");
}

async function signByEmail(event) {
  event.preventDefault();
  const form = $("sign-email-form");
  const message = $("sign-message");
  const fields = form.elements;
  const signer = { name: fields.name.value, email: fields.email.value, country: fields.country.value.trim().toUpperCase() };
  if (fields.postcode.value.trim()) signer.postcode = fields.postcode.value;
  fields["sign-email-submit"].disabled = true;
  try {
    const answer = await api.signByEmail(id, signer);
    form.hidden = true;
    showMessage(message, answer.message, "info");
  } catch (error) {
    showMessage(message, Object.keys(error.fields).length ? Object.entries(error.fields).map(([name, text]) => `${name} ${text}`).join("; ") : describe(error));
  } finally {
    fields["sign-email-submit"].disabled = false;
  }
}

async function toggleSignature(action) {
  const button = $("sign-button");
  const message = $("sign-message");
  button.dataset.busy = "1";
  renderSignButton();
  try {
    const petition = await (action === "withdraw" ? api.withdraw(id) : api.sign(id));
    state.signed = action === "sign";
    acceptPetition(petition);
    setCount(petition.signature_count);
    showMessage(message, state.signed ? "Thank you: your signature is counted." : "Your signature was withdrawn.", "info");
  } catch (error) {
    if (error.code === "already_signed") {
      state.signed = true;
      showMessage(message, "You had already signed this petition.", "info");
    } else if (error.code === "not_signed") {
      state.signed = false;
      showMessage(message, "Your signature was already withdrawn.", "info");
    } else if (error.status === 404) {
      gone();
    } else if (error.code === "not_open") {
      showMessage(message, "This petition no longer takes signatures.", "info");
      reloadPetition();
    } else {
      showMessage(message, describe(error));
    }
  } finally {
    delete button.dataset.busy;
    renderSignButton();
  }
}

// -- account --------------------------------------------------------------------------

function signedIn(user) {
  state.user = user;
  state.signed = null;
  showAccount(user);
  notice("");
  // The feed stays as it is: the public feed carries the same frames signed in or out.
}

function signedOut(message) {
  state.user = null;
  state.signed = null;
  showAccount(null);
  renderSignButton();
  notice(message);
  startFeed(); // anonymous from now on
}

async function askToSignIn(mode) {
  const user = await dialog.ask(mode);
  if (user) {
    signedIn(user);
    loadSignature();
  }
}

function boot() {
  $("sign-button").addEventListener("click", signClicked);
  $("sign-email-form").addEventListener("submit", signByEmail);
  $("sign-in-instead").addEventListener("click", signInInstead);
  $("sign-out").addEventListener("click", async () => {
    const problem = await signOutOnServer();
    signedOut(problem);
  });
  $("open-signin").addEventListener("click", () => askToSignIn("signin"));
  $("open-register").addEventListener("click", () => askToSignIn("register"));
  window.addEventListener("online", () => {
    if (state.feed) state.feed.nudge();
    renderConnection([state.feed]);
  });
  window.addEventListener("offline", () => renderConnection([state.feed]));
  showAccount(state.user);
  render();
  chart.setTimeline([], state.count);
  loadSignature();
  startFeed();
}

boot();
