// Small DOM helpers: keyed list updates that keep focus and typed text,
// petition cards, status badges, and form errors from 422 answers.

export const STATUS_LABELS = {
  submitted: "Submitted",
  under_review: "Under review",
  in_progress: "In progress",
  resolved: "Resolved",
  rejected: "Rejected",
};

export function statusLabel(status) {
  return STATUS_LABELS[status] || status;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : dateFormat.format(moment);
}

export function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * Make `container`'s children show `items` in order, one element per key.
 * Existing elements are updated in place and only moved when out of order,
 * so a focused button or a half-typed note survives a live update.
 */
export function reconcile(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of container.children) existing.set(child.dataset.key, child);
  const wanted = new Set();
  let cursor = container.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    wanted.add(key);
    let element = existing.get(key);
    if (!element) {
      element = create(item);
      element.dataset.key = key;
    }
    update(element, item);
    if (element !== cursor) {
      container.insertBefore(element, cursor);
    } else {
      cursor = cursor.nextElementSibling;
    }
  }
  for (const [key, element] of existing) {
    if (!wanted.has(key)) element.remove();
  }
}

/** A fresh petition card from the page's <template>. */
export function newCard() {
  return document.getElementById("petition-card").content.firstElementChild.cloneNode(true);
}

/** Fill the parts every card shares: title, badge, author and dates, description, response, count. */
export function fillCard(card, petition, { showAuthor = true } = {}) {
  card.dataset.petitionId = String(petition.petition_id);
  card.dataset.status = petition.status;
  const link = card.querySelector(".card-link");
  setText(link, petition.title);
  const href = petitionPath(petition.petition_id);
  if (link.getAttribute("href") !== href) link.setAttribute("href", href);
  const badge = card.querySelector(".badge");
  setText(badge, statusLabel(petition.status));
  badge.className = `badge badge-${petition.status}`;
  const meta = [];
  if (showAuthor) meta.push(["by ", userText(petition.author.name)]);
  if (petition.category) meta.push([userText(petition.category)]);
  if (petition.location) meta.push([userText(petition.location)]);
  meta.push([`filed ${formatTime(petition.submitted_at)}`]);
  setParts(card.querySelector(".card-meta"), joinParts(meta));
  setText(card.querySelector(".card-description"), petition.description);
  const response = card.querySelector(".card-response");
  response.hidden = !petition.response;
  setText(response.querySelector(".response-text"), petition.response || "");
  setText(card.querySelector(".signatures"), signatureCount(petition.signature_count));
}

/** Where a petition's own page is. */
export function petitionPath(id) {
  return `/petitions/${id}`;
}

const countFormat = new Intl.NumberFormat();

/** "1,234 signatures" (the number in the reader's locale). */
export function signatureCount(count) {
  return `${countFormat.format(count)} ${count === 1 ? "signature" : "signatures"}`;
}

export const MILESTONE_LABELS = {
  response: "Reached the response threshold: the petitions office will respond",
  debate: "Reached the debate threshold: it will be considered for a debate",
};

/** One lifecycle event (history entry or admin-feed frame) as the parts of a sentence (see setParts). */
export function describeEvent(event) {
  const who = event.actor ? userText(event.actor.name) : "someone";
  const when = formatTime(event.at);
  switch (event.event) {
    case "created":
      return ["Filed by ", who, `, ${when}`];
    case "status_changed":
      return [`${statusLabel(event.from_status)} → ${statusLabel(event.to_status)} by `, who, `, ${when}`,
        ...(event.note ? [": “", userText(event.note), "”"] : [])];
    case "milestone":
      return [`${MILESTONE_LABELS[event.milestone] || "Reached a milestone"}, ${when}`];
    default:
      return [];
  }
}

export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** Text a user wrote (a name, a title, a note, a place), as a part for setParts. */
export function userText(text) {
  return { userText: text };
}

/** Sentences of parts, ["by ", userText(name)] and the like, joined with " · " into one list of parts. */
export function joinParts(sentences, separator = " · ") {
  return sentences.flatMap((parts, index) => (index ? [separator, ...parts] : parts));
}

const shownParts = new WeakMap();

/**
 * Show the page's own words and userText parts in ``element``: each user part in its own
 * <bdi dir="auto">, so a right-to-left name or title cannot reorder the words around it.
 */
export function setParts(element, parts) {
  const key = JSON.stringify(parts);
  if (shownParts.get(element) === key) return;
  shownParts.set(element, key);
  element.replaceChildren(...parts.map((part) => {
    if (typeof part === "string") return document.createTextNode(part);
    const isolated = document.createElement("bdi");
    isolated.dir = "auto";
    isolated.textContent = part.userText;
    return isolated;
  }));
}

export function showMessage(element, text, kind = "error") {
  element.hidden = !text;
  element.textContent = text || "";
  element.dataset.kind = kind;
}

/** Clear a form's error slots and aria-invalid marks. */
export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) showMessage(slot, "");
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/**
 * Show an API error on a form: each of a 422's fields next to its input
 * (focusing the first), anything else in the form's own error slot.
 */
export function showErrors(form, error) {
  clearErrors(form);
  let first = null;
  for (const [name, problem] of Object.entries(error.fields || {})) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    const input = form.elements.namedItem(name);
    if (!slot || !input) continue;
    showMessage(slot, problem.charAt(0).toUpperCase() + problem.slice(1) + ".");
    input.setAttribute("aria-invalid", "true");
    const described = new Set((input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean));
    described.add(slot.id);
    input.setAttribute("aria-describedby", [...described].join(" "));
    first = first || input;
  }
  if (first) {
    first.focus();
    return;
  }
  showMessage(form.querySelector('[data-error-for="form"]'), describe(error));
}

/** A sentence for an error, whether the API answered or the network failed. */
export function describe(error) {
  if (error && error.status === 429) {
    return error.retryAfter ? `Too many attempts: try again in ${error.retryAfter} s.` : "Too many attempts: wait a moment.";
  }
  if (error && error.status) return error.message;
  return "The server cannot be reached right now. Try again in a moment.";
}
