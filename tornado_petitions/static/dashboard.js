// The office's dashboard (moderators and admins): every petition, the queues of the petitions office
// (GET /api/admin/queues: moderation with overdue markers, awaiting a
// response, debate) with their counts, and the lifecycle moves with a note.
// Where the server has no queues yet (404), it filters by status alone.

import { api } from "api.js";
import {
  clearErrors, describe, describeEvent, fillCard, formatTime, newCard, reconcile, setParts, setText, showErrors,
  showMessage, statusLabel, userText,
} from "render.js";
import { can, config } from "session.js";

const OPEN_STATUSES = new Set(["submitted", "under_review", "in_progress"]);
const QUEUES = [
  ["moderation", "Moderation"],
  ["awaiting_response", "Awaiting response"],
  ["debate", "Debate"],
];
// Queue membership only changes with lifecycle events; several in a row are fetched once.
const QUEUE_REFRESH_MS = 300;
// "Overdue" is a matter of time passing too: look again now and then.
const QUEUE_POLL_MS = 60_000;
const REJECTION_REASONS = config.rejection_reasons || [];
const $ = (id) => document.getElementById(id);

/**
 * The dashboard, sharing the page's petition store: `state.petitions`,
 * `state.filter`, and `applyPetition` / `display` / `scheduleRender` / `notice`.
 */
export function dashboardView({ state, applyPetition, display, scheduleRender, notice }) {
  const lastAction = new Map(); // petition_id -> the latest admin-feed event about it
  let queues = null; // {moderation: [...], ...} once the server answered
  let queuesMissing = false; // the server has no queues endpoint (404): status filters only
  let refreshTimer = null;
  let pollTimer = null;
  let queueToken = 0;

  const mayQueue = () => can(state.user, "view_queues");

  async function loadQueues() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    if (!mayQueue() || queuesMissing) return;
    const token = ++queueToken;
    try {
      const answer = await api.queues();
      if (token !== queueToken) return;
      queues = answer;
      for (const [name] of QUEUES) for (const petition of queues[name] || []) applyPetition(petition);
    } catch (error) {
      if (token !== queueToken) return;
      if (error.status === 404) {
        queuesMissing = true;
        queues = null;
      } else if (error.status !== 401) {
        notice(`Could not load the queues: ${describe(error)}`);
      }
    }
    renderQueueOptions();
    scheduleRender();
  }

  function queueSoon() {
    if (!mayQueue() || queuesMissing || refreshTimer) return;
    refreshTimer = setTimeout(loadQueues, QUEUE_REFRESH_MS);
  }

  function renderQueueOptions() {
    const bar = $("queues");
    const select = $("dashboard-filter");
    bar.hidden = !queues;
    for (const option of [...select.options]) if (option.value.startsWith("queue:")) option.remove();
    if (!queues) {
      if (state.filter.startsWith("queue:")) state.filter = "";
      select.value = state.filter;
      bar.replaceChildren();
      return;
    }
    const buttons = [];
    QUEUES.forEach(([name, label], index) => {
      const items = queues[name] || [];
      // The lists are capped; `counts` (when the server gives it) has the whole queue's size.
      const total = queues.counts && typeof queues.counts[name] === "number" ? queues.counts[name] : items.length;
      const overdue = items.filter((item) => item.overdue).length;
      const text = `${label}: ${total}${overdue ? `, ${overdue} overdue` : ""}`;
      select.add(new Option(`${label.toLowerCase()} queue (${total})`, `queue:${name}`), index + 1);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "queue button-quiet";
      button.dataset.queue = name;
      button.setAttribute("aria-pressed", String(state.filter === `queue:${name}`));
      const title = document.createElement("span");
      title.textContent = label;
      const count = document.createElement("span");
      count.className = "queue-count";
      count.textContent = String(total);
      button.append(title, count);
      if (overdue) {
        const marker = document.createElement("span");
        marker.className = "overdue";
        marker.textContent = `${overdue} overdue`;
        button.append(marker);
      }
      button.setAttribute("aria-label", text);
      button.addEventListener("click", () => setFilter(state.filter === `queue:${name}` ? "" : `queue:${name}`));
      buttons.push(button);
    });
    // Keep the focused button focused across a refresh.
    const focused = document.activeElement && document.activeElement.dataset.queue;
    bar.replaceChildren(...buttons);
    if (focused) bar.querySelector(`[data-queue="${focused}"]`).focus();
    select.value = state.filter;
  }

  function setFilter(value) {
    state.filter = value;
    $("dashboard-filter").value = value;
    for (const button of $("queues").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(value === `queue:${button.dataset.queue}`));
    }
    scheduleRender();
  }

  function dashboardOrder(a, b) {
    const aOpen = OPEN_STATUSES.has(a.status);
    const bOpen = OPEN_STATUSES.has(b.status);
    if (aOpen !== bOpen) return aOpen ? -1 : 1;
    if (aOpen) return a.submitted_at.localeCompare(b.submitted_at) || a.petition_id - b.petition_id;
    return b.updated_at.localeCompare(a.updated_at) || b.petition_id - a.petition_id;
  }

  function overdueIds() {
    return new Set(((queues && queues.moderation) || []).filter((p) => p.overdue).map((p) => p.petition_id));
  }

  function render() {
    let petitions;
    if (state.filter.startsWith("queue:") && queues) {
      // The queue's own order (oldest first), with each petition's freshest state.
      petitions = (queues[state.filter.slice("queue:".length)] || []).map(display);
    } else {
      petitions = [...state.petitions.values()]
        .filter((p) => !state.filter || (state.filter === "open" ? OPEN_STATUSES.has(p.status) : p.status === state.filter))
        .sort(dashboardOrder)
        .map(display);
    }
    const empty = $("dashboard-empty");
    empty.hidden = petitions.length > 0;
    setText(empty, state.filter ? "Nothing here." : "No petitions yet.");
    const overdue = overdueIds();
    reconcile($("dashboard-list"), petitions, (p) => p.petition_id, dashboardCard, (card, petition) =>
      updateDashboardCard(card, petition, overdue.has(petition.petition_id)));
  }

  function dashboardCard() {
    const card = newCard();
    card.classList.add("card-admin");
    const marker = document.createElement("span");
    marker.className = "overdue";
    marker.textContent = "Overdue";
    marker.hidden = true;
    card.querySelector(".badge").before(marker);
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

  function updateDashboardCard(card, petition, overdue) {
    fillCard(card, petition);
    const id = petition.petition_id;
    const waiting = OPEN_STATUSES.has(petition.status) ? ` · waiting since ${formatTime(petition.submitted_at)}` : "";
    const reached = (petition.milestones || []).map((m) => m.milestone);
    const office = (petition.awaiting_response ? " · awaiting a response" : "") +
      (reached.includes("debate") ? " · up for debate" : "");
    setParts(card.querySelector(".card-meta"), [`#${id} by `, userText(petition.author.name), `${waiting}${office}`]);
    card.querySelector(".overdue").hidden = !overdue;
    card.classList.toggle("card-overdue", overdue);
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
        ...REJECTION_REASONS.map((code) => {
          const option = new Option(code.replaceAll("_", " "), code);
          option.selected = code === config.default_rejection_reason;
          return option;
        }),
      );
    }
    // Servers without rejection reasons (before the petitions office) offer none.
    form.querySelector(".reason-field").hidden =
      !REJECTION_REASONS.length || !(config.transitions[petition.status] || []).includes("rejected");
    const needsNote = (config.transitions[petition.status] || []).some((s) => config.note_required.includes(s));
    setText(form.querySelector(".note-label"), needsNote ? "Note to the author (required to reject)" : "Note to the author");
    const activity = card.querySelector(".card-activity");
    const last = lastAction.get(id);
    activity.hidden = !last;
    if (last) setParts(activity, describeEvent(last));
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
      const reason = REJECTION_REASONS.length ? form.elements.namedItem("reason").value : "";
      const petition = await api.move(id, target, text, version, reason);
      applyPetition(petition);
      note.value = "";
      showMessage(message, `Moved to ${statusLabel(petition.status).toLowerCase()}.`, "info");
      message.dataset.version = String(display(petition).version);
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

  return {
    boot() {
      const select = $("dashboard-filter");
      select.append(new Option("waiting for a decision", "open"));
      for (const status of config.statuses) select.append(new Option(statusLabel(status).toLowerCase(), status));
      select.addEventListener("change", (event) => setFilter(event.target.value));
    },
    /** A new page state (sign-in, sign-out): forget queues and activity; the office loads the queues. */
    reset() {
      lastAction.clear();
      queues = null;
      queueToken += 1;
      clearTimeout(refreshTimer);
      refreshTimer = null;
      clearInterval(pollTimer);
      renderQueueOptions();
      if (mayQueue()) {
        loadQueues();
        pollTimer = setInterval(loadQueues, QUEUE_POLL_MS);
      }
    },
    render,
    /** A lifecycle event from the admin feed: remember who did it; queues may have changed. */
    event(message) {
      if (message.actor && (message.event === "created" || message.event === "status_changed")) {
        lastAction.set(message.petition.petition_id, message);
      }
      queueSoon();
    },
    /** The feed resumed or reset: whatever happened meanwhile may have moved the queues. */
    resumed() {
      queueSoon();
    },
  };
}
