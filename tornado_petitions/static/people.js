// The admins' panels of the dashboard: the office's people (GET /api/admin/users,
// a role changed with PATCH /api/admin/users/{id}) and the audit log
// (GET /api/admin/audit), each newest first with "more". Which panels show is
// the signed-in role's permissions, as the page config carries them.

import { api } from "api.js";
import { describe, formatTime, setParts, showMessage, userText } from "render.js";
import { can, config } from "session.js";

const $ = (id) => document.getElementById(id);
const ROLE_LABELS = { citizen: "Citizen", moderator: "Moderator", admin: "Admin" };

/** Both panels; `reset(user)` shows and loads the ones `user` may use, and hides the others. */
export function peopleView({ notice }) {
  let usersCursor = null;
  let auditCursor = null;
  let usersToken = 0;
  let auditToken = 0;

  async function loadUsers(more = false) {
    const token = ++usersToken;
    const list = $("people-list");
    try {
      const page = await api.users($("people-search").value.trim(), more ? usersCursor : null);
      if (token !== usersToken) return;
      if (!more) list.replaceChildren();
      list.append(...page.users.map(userRow));
      usersCursor = page.next_cursor;
      $("people-more").hidden = !usersCursor;
      $("people-empty").hidden = list.children.length > 0;
    } catch (error) {
      if (token === usersToken) notice(`Could not load the people: ${describe(error)}`);
    }
  }

  function userRow(user) {
    const row = document.createElement("li");
    row.className = "person";
    row.dataset.userId = String(user.user_id);
    const who = document.createElement("span");
    who.className = "person-who";
    setParts(who, [userText(user.name), " <", userText(user.email), ">"]);
    const select = document.createElement("select");
    select.setAttribute("aria-label", `Role of ${user.name}`);
    for (const role of config.roles) select.add(new Option(ROLE_LABELS[role] || role, role, false, role === user.role));
    const save = document.createElement("button");
    save.type = "button";
    save.className = "button-quiet";
    save.textContent = "Change role";
    const message = document.createElement("p");
    message.className = "card-message";
    message.setAttribute("role", "status");
    message.hidden = true;
    save.addEventListener("click", async () => {
      save.disabled = true;
      showMessage(message, "");
      try {
        const changed = await api.setRole(user.user_id, select.value);
        user.role = changed.role;
        showMessage(message, `${user.name} is now ${ROLE_LABELS[changed.role].toLowerCase()}.`, "info");
        loadAudit();
      } catch (error) {
        select.value = user.role;
        showMessage(message, describe(error));
      } finally {
        save.disabled = false;
      }
    });
    row.append(who, select, save, message);
    return row;
  }

  async function loadAudit(more = false) {
    const token = ++auditToken;
    const list = $("audit-list");
    try {
      const page = await api.audit(more ? auditCursor : null);
      if (token !== auditToken) return;
      if (!more) list.replaceChildren();
      list.append(...page.entries.map(auditRow));
      auditCursor = page.next_cursor;
      $("audit-more").hidden = !auditCursor;
      $("audit-empty").hidden = list.children.length > 0;
    } catch (error) {
      if (token === auditToken) notice(`Could not load the audit log: ${describe(error)}`);
    }
  }

  function auditRow(entry) {
    const row = document.createElement("li");
    row.className = "audit-entry";
    const details = entry.details || {};
    const change = details.from !== undefined ? ` ${details.from} → ${details.to}` : "";
    const reason = details.reason ? ` (${details.reason.replaceAll("_", " ")})` : "";
    setParts(row, [
      `${formatTime(entry.at)} · `, userText(entry.actor.name),
      ` · ${entry.action.replaceAll("_", " ")} ${entry.target.type} #${entry.target.id}${change}${reason}`,
      ` · from ${entry.address}`,
    ]);
    return row;
  }

  return {
    boot() {
      $("people-form").addEventListener("submit", (event) => {
        event.preventDefault();
        loadUsers();
      });
      $("people-more").addEventListener("click", () => loadUsers(true));
      $("audit-more").addEventListener("click", () => loadAudit(true));
    },
    reset(user) {
      usersToken += 1;
      auditToken += 1;
      const people = can(user, "change_roles") && can(user, "list_users");
      const audit = can(user, "read_audit");
      $("people").hidden = !people;
      $("audit").hidden = !audit;
      $("people-list").replaceChildren();
      $("audit-list").replaceChildren();
      $("people-search").value = "";
      for (const id of ["people-more", "audit-more"]) $(id).hidden = true;
      if (people) loadUsers();
      if (audit) loadAudit();
    },
    /** An office event went by: the audit log has a new entry. */
    event() {
      if (!$("audit").hidden) loadAudit();
    },
  };
}
