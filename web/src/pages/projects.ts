// Projects: the list and the form that creates one.

import { ApiError, api, asList } from "../api/client.js";
import type { Project } from "../api/types.js";
import { formatDate, h } from "../ui/dom.js";
import type { Page } from "./page.js";

export const projectsPage: Page = async (root) => {
  root.appendChild(h("h1", {}, "Projects"));
  const projects = asList<Project>(await api.get("/projects"), "projects");
  root.appendChild(
    projects.length
      ? h(
          "table",
          { class: "grid", "data-testid": "projects" },
          h("thead", {}, h("tr", {}, ["Project", "Description", "Images", "Created", ""].map((c) => h("th", {}, c)))),
          h(
            "tbody",
            {},
            projects.map((p) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { href: `#/projects/${p.id}` }, p.name)),
                h("td", {}, p.description || "—"),
                h("td", { class: "num" }, p.image_count ?? "—"),
                h("td", {}, formatDate(p.created_at)),
                h("td", {}, h("a", { class: "button", href: `#/projects/${p.id}` }, "Open")),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No projects yet."),
  );

  const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "e.g. CHASE_DB1 vessels" });
  const description = h("input", { name: "description", maxlength: 2000 });
  const error = h("p", { class: "error", role: "alert" });
  root.appendChild(
    h(
      "form",
      {
        class: "card",
        style: { marginTop: "1.5rem", maxWidth: "560px" },
        onsubmit: async (e: Event) => {
          e.preventDefault();
          error.textContent = "";
          try {
            const p = await api.post<Project>("/projects", { name: name.value.trim(), description: description.value.trim() });
            location.hash = `#/projects/${p.id}`;
          } catch (err) {
            error.textContent = err instanceof ApiError ? err.message : String(err);
          }
        },
      },
      h("h2", { style: { marginTop: 0 } }, "New project"),
      h("label", {}, "Name", name),
      h("label", {}, "Description", description),
      h("p", {}, h("button", { class: "primary", type: "submit" }, "Create project")),
      error,
    ),
  );
};
