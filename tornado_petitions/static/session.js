// What both pages share around the account: the header (who is signed in, the
// connection badge), and the sign-in / registration dialog that opens in place,
// so a visitor who signs in keeps their place on the page.

import { api, ApiError } from "api.js";
import { clearErrors, setParts, setText, showErrors, showMessage, userText } from "render.js";

const $ = (id) => document.getElementById(id);

/** The page's config, rendered by the server (user, lifecycle, limits, maybe the petition). */
export const config = JSON.parse(document.getElementById("page-config").textContent);

/** Whether `user` (null: signed out) may do `permission`: the server's table of roles, from the page config. */
export function can(user, permission) {
  return Boolean(user && (config.permissions[user.role] || []).includes(permission));
}

/** Show who is signed in (or the Sign in / Create account buttons) in the header. */
export function showAccount(user) {
  $("account").hidden = !user;
  $("guest").hidden = Boolean(user);
  if (user) setParts($("account-name"), [userText(user.name), user.role !== "citizen" ? ` (${user.role})` : ""]);
}

/** The header's badge: "Live" when every feed is connected, else the worst of their states. */
export function renderConnection(feeds) {
  const states = feeds.map((feed) => feed.state);
  let overall = "offline";
  let text = "Offline";
  if (!navigator.onLine || states.length === 0) {
    overall = "offline";
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

/** Sign out on the server; a network failure still signs this page out (the session then expires). */
export async function signOutOnServer() {
  try {
    await api.logout();
    return "";
  } catch (error) {
    if (error instanceof ApiError) return "";
    return "Signed out on this page, but the server could not be told; the session ends when it expires.";
  }
}

/**
 * The sign-in / registration dialog. `ask(mode, reason)` opens it (mode
 * "signin" or "register" decides which form has focus) and resolves with the
 * user once signed in, or null if the visitor closed it.
 */
export class SignInDialog {
  constructor() {
    this.dialog = $("signin");
    this.resolve = null;
    const limits = config.limits;
    $("register-name").maxLength = limits.name_max;
    $("login-email").maxLength = limits.email_max;
    $("register-email").maxLength = limits.email_max;
    setText($("register-password-hint"), `At least ${limits.password_min} characters.`);
    $("login-form").addEventListener("submit", (event) => this.submit(event, (value) =>
      api.login(value("email").trim(), value("password"))));
    $("register-form").addEventListener("submit", (event) => this.submit(event, (value) =>
      api.register(value("name").trim(), value("email").trim(), value("password"))));
    $("forgot-password").addEventListener("click", () => this.forgotPassword());
    $("close-signin").addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => this.settle(null));
  }

  ask(mode = "signin", reason = "") {
    const reasonText = $("signin-reason");
    reasonText.hidden = !reason;
    setText(reasonText, reason);
    for (const form of [$("login-form"), $("register-form")]) clearErrors(form);
    for (const sent of [$("login-sent"), $("register-sent")]) showMessage(sent, "");
    if (!this.dialog.open) this.dialog.showModal();
    (mode === "register" ? $("register-name") : $("login-email")).focus();
    return new Promise((resolve) => {
      this.settle(null);
      this.resolve = resolve;
    });
  }

  async submit(event, send) {
    event.preventDefault();
    const form = event.currentTarget;
    clearErrors(form);
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    const sent = form.querySelector(".form-sent");
    showMessage(sent, "");
    try {
      const { user, message } = await send((name) => form.elements.namedItem(name).value);
      form.reset();
      if (!user) {
        // Registration with email verification (202): the link in the mail signs in.
        showMessage(sent, message, "info");
        return;
      }
      const resolve = this.resolve;
      this.resolve = null;
      this.dialog.close();
      if (resolve) resolve(user);
    } catch (error) {
      showErrors(form, error);
    } finally {
      submit.disabled = false;
    }
  }

  /** "Forgot your password?": mail a reset link to the email typed in the sign-in form. */
  async forgotPassword() {
    const form = $("login-form");
    clearErrors(form);
    const email = $("login-email").value.trim();
    if (!email) {
      showErrors(form, new ApiError(422, { message: "Type your email first.", fields: { email: "is required" } }));
      $("login-email").focus();
      return;
    }
    try {
      const { message } = await api.requestPasswordReset(email);
      showMessage($("login-sent"), message, "info");
    } catch (error) {
      showErrors(form, error);
    }
  }

  settle(value) {
    const resolve = this.resolve;
    this.resolve = null;
    if (resolve) resolve(value);
  }
}

/** A page-wide notice (errors the visitor should see); empty text hides it. */
export function notice(text) {
  showMessage($("notice"), text, "error");
}
