// The dashboard's fraud panel: trending alerts from the admin feed as they
// arrive, the trending lists of a petition (GET /api/admin/petitions/{id}/trending),
// and an invalidation from an alert in two clicks: "Preview" (a dry run says
// how many) then "Invalidate N", its progress polled until it ends.

import { request } from "api.js";
import { describe, plural, setText } from "render.js";

const POLL_MS = 500;
const MAX_ALERTS = 50;
const $ = (id) => document.getElementById(id);

const fraudApi = {
  trending: (id) => request("GET", `/api/admin/petitions/${id}/trending`),
  invalidate: (conditions) => request("POST", "/api/admin/invalidations", conditions),
  invalidation: (id) => request("GET", `/api/admin/invalidations/${id}`),
  cancel: (id) => request("DELETE", `/api/admin/invalidations/${id}`),
};

/** The conditions an alert stands for: its petition and the address or domain that trended. */
function conditionsOf(alert) {
  const key = alert.kind === "trending_domain" ? "domain" : "address";
  return { petition_id: alert.petition_id, [key]: alert.value };
}

function button(text, className, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  element.addEventListener("click", onClick);
  return element;
}

export function fraudPanel() {
  const timers = new Set();

  function showAlert(alert) {
    const list = $("fraud-alerts");
    $("fraud-empty").hidden = true;
    const item = document.createElement("li");
    item.className = "fraud-alert";
    item.dataset.petitionId = String(alert.petition_id);
    const what = alert.kind === "trending_domain" ? "Email domain" : "Address";
    const text = document.createElement("p");
    text.className = "fraud-alert-text";
    setText(text, `${what} ${alert.value}: ${plural(alert.count, "signature", "signatures")} of petition #${alert.petition_id} within the hour`);
    const status = document.createElement("p");
    status.className = "fraud-status";
    status.setAttribute("role", "status");
    const actions = document.createElement("div");
    actions.className = "actions";
    const conditions = conditionsOf(alert);
    const preview = button("Preview", "button-quiet fraud-preview", async () => {
      preview.disabled = true;
      try {
        const { matched } = await fraudApi.invalidate({ ...conditions, dry_run: true });
        setText(status, `${plural(matched, "signature", "signatures")} would be invalidated.`);
        run.textContent = `Invalidate ${matched}`;
        run.hidden = matched === 0;
      } catch (error) {
        setText(status, `Could not preview: ${describe(error)}`);
      } finally {
        preview.disabled = false;
      }
    });
    const run = button("Invalidate", "fraud-run", async () => {
      run.disabled = preview.disabled = true;
      try {
        const started = await fraudApi.invalidate(conditions);
        follow(started.invalidation_id, status, run, preview);
      } catch (error) {
        setText(status, `Could not invalidate: ${describe(error)}`);
        run.disabled = preview.disabled = false;
      }
    });
    run.hidden = true;
    const lists = button("Trending", "button-quiet fraud-trending", () => showTrending(alert.petition_id));
    actions.append(preview, run, lists);
    item.append(text, actions, status);
    list.prepend(item);
    while (list.children.length > MAX_ALERTS) list.lastElementChild.remove();
  }

  function follow(id, status, run, preview) {
    const poll = async () => {
      let state;
      try {
        state = await fraudApi.invalidation(id);
      } catch (error) {
        setText(status, `Could not read invalidation ${id}: ${describe(error)}`);
        return;
      }
      setText(status, `Invalidation ${id} ${state.state}: ${state.invalidated} of ${state.matched} invalidated.`);
      status.dataset.state = state.state;
      if (state.state === "running") {
        const timer = setTimeout(() => { timers.delete(timer); poll(); }, POLL_MS);
        timers.add(timer);
      } else {
        run.hidden = true;
        preview.disabled = false;
      }
    };
    poll();
  }

  async function showTrending(petitionId) {
    const box = $("fraud-trending");
    box.hidden = false;
    setText($("fraud-trending-title"), `Petition #${petitionId}, the last hour`);
    let answer;
    try {
      answer = await fraudApi.trending(petitionId);
    } catch (error) {
      setText($("fraud-trending-title"), `Could not load the trending lists: ${describe(error)}`);
      return;
    }
    for (const [name, items] of [["addresses", answer.addresses], ["domains", answer.domains]]) {
      const list = $(`fraud-trending-${name}`);
      list.replaceChildren(...items.map((entry) => {
        const item = document.createElement("li");
        setText(item, `${entry.value}: ${entry.count}`);
        return item;
      }));
    }
  }

  return {
    /** A message of the admin feed: an alert is shown at the top of the panel. */
    message(message) {
      if (message.type === "alert") showAlert(message);
    },
    /** Signed out or another user: forget every alert and stop polling. */
    reset() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      $("fraud-alerts").replaceChildren();
      $("fraud-empty").hidden = false;
      $("fraud-trending").hidden = true;
    },
    boot() {
      $("fraud-lookup").addEventListener("submit", (event) => {
        event.preventDefault();
        const id = Number($("fraud-petition").value);
        if (id > 0) showTrending(id);
      });
    },
  };
}
