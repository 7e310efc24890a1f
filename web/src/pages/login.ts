import { ApiError } from "../api/client.js";
import { login } from "../session.js";
import { h } from "../ui/dom.js";
import type { Page } from "./page.js";

export const loginPage: Page = async (root) => {
  const error = h("p", { class: "error", role: "alert" });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        error.textContent = "";
        button.disabled = true;
        try {
          await login(email.value.trim(), password.value);
          window.dispatchEvent(new Event("medloop:login"));
        } catch (err) {
          error.textContent = err instanceof ApiError ? err.message : `Cannot reach the server: ${(err as Error).message}`;
        } finally {
          button.disabled = false;
        }
      },
    },
    h("h1", {}, "medloop"),
    h("p", { class: "muted" }, "Vessel segmentation, corrected by people, learned by the machine."),
    h("label", {}, "E-mail", email),
    h("label", {}, "Password", password),
    button,
    error,
  );
  root.appendChild(form);
};
