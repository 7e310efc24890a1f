// One project: its images (upload by drag and drop, with progress), its campaigns and
// the form that starts a new campaign.

import { ApiError, api, asList, uploadWithProgress } from "../api/client.js";
import type { Campaign, ImageRow, Project } from "../api/types.js";
import { fill, formatDate, h, toast } from "../ui/dom.js";
import { campaignForm } from "./campaignForm.js";
import type { Page } from "./page.js";
import { pairUploads } from "./uploadPairs.js";

function thumbUrl(img: ImageRow & { thumbnail_url?: string }): string {
  const token = localStorage.getItem("medloop.token") ?? "";
  const base = img.thumbnail_url ?? `/api/images/${img.id}/thumbnail`;
  return `${base}${base.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
}

function uploader(projectId: number, onDone: () => void): HTMLElement {
  const role = h("select", { name: "role" }, ["pool", "seed", "test"].map((r) => h("option", { value: r }, r)));
  const maskSuffix = h("input", { name: "maskSuffix", value: "_mask", size: 10, "data-testid": "mask-suffix" });
  const list = h("div", { class: "uploads", "data-testid": "uploads" });
  const input = h("input", { type: "file", multiple: true, accept: "image/png,image/jpeg,image/tiff", "data-testid": "file-input" });
  const zone = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone" },
    h("p", {}, "Drop fundus images here (PNG, JPEG, TIFF), or ", input),
    h("label", { class: "check" }, "Role of the uploaded images: ", role),
    h("label", { class: "check" }, "Reference masks (binary PNG) dropped with them are named like the image plus ", maskSuffix),
  );

  function row(text: string): { label: HTMLElement; bar: HTMLElement } {
    const bar = h("div", { style: { width: "0%" } });
    const label = h("span", {}, text);
    list.appendChild(h("div", { class: "upload" }, label, h("div", { class: "progress" }, bar)));
    return { label, bar };
  }

  async function send(files: File[]): Promise<void> {
    const { pairs, orphanMasks } = pairUploads(files, maskSuffix.value);
    for (const orphan of orphanMasks) {
      const { label } = row(`${orphan.name}: not sent, the image it is the mask of is not in this drop`);
      label.className = "error";
    }
    for (const { image, mask, name } of pairs) {
      const title = mask ? `${image.name} + ${mask.name}` : image.name;
      const { label, bar } = row(`${title}: 0%`);
      const form = new FormData();
      form.append("name", name);
      form.append("role", role.value);
      form.append("image", image, image.name);
      if (mask) form.append("mask", mask, mask.name);
      try {
        await uploadWithProgress(`/projects/${projectId}/images`, form, (f) => {
          bar.style.width = `${Math.round(f * 100)}%`;
          label.textContent = `${title}: ${Math.round(f * 100)}%`;
        });
        label.textContent = `${image.name}: stored${mask ? " with its reference mask" : ""}`;
      } catch (err) {
        label.textContent = `${title}: ${err instanceof ApiError ? err.message : String(err)}`;
        label.className = "error";
      }
    }
    onDone();
  }

  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    void send([...(e.dataTransfer?.files ?? [])]);
  });
  input.addEventListener("change", () => void send([...(input.files ?? [])]));
  return h("div", {}, zone, list);
}

export const projectPage: Page = async (root, [pid]) => {
  const projectId = Number(pid);
  const project = await api.get<Project>(`/projects/${projectId}`);
  root.appendChild(h("p", {}, h("a", { href: "#/projects" }, "← Projects")));
  root.appendChild(h("h1", {}, project.name));
  if (project.description) root.appendChild(h("p", { class: "muted" }, project.description));

  let images: ImageRow[] = [];
  const campaignsBox = h("div", {});
  const imagesBox = h("div", {});

  async function refreshCampaigns(): Promise<void> {
    const campaigns = asList<Campaign>(await api.get("/campaigns", { project_id: projectId }), "campaigns");
    campaignsBox.replaceChildren(
      campaigns.length
        ? h(
            "table",
            { class: "grid", "data-testid": "campaigns" },
            h("thead", {}, h("tr", {}, ["Campaign", "State", "Phase", "Round", "K", "Started", ""].map((c) => h("th", {}, c)))),
            h(
              "tbody",
              {},
              campaigns.map((c) =>
                h(
                  "tr",
                  {},
                  h("td", {}, h("a", { href: `#/campaigns/${c.id}` }, c.name)),
                  h("td", {}, c.state),
                  h("td", {}, c.phase ?? "—"),
                  h("td", { class: "num" }, c.round),
                  h("td", { class: "num" }, c.k),
                  h("td", {}, formatDate(c.created_at)),
                  h("td", {}, h("a", { href: `#/campaigns/${c.id}/evaluation` }, "Evaluation")),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No campaign yet."),
    );
  }

  async function refreshImages(): Promise<ImageRow[]> {
    images = asList<ImageRow>(await api.get(`/projects/${projectId}/images`), "images");
    const count = (r: string) => images.filter((i) => i.role === r).length;
    fill(imagesBox, 
      h("p", { "data-testid": "image-counts" }, `${images.length} images: ${count("seed")} seed, ${count("pool")} pool, ${count("test")} test`),
      h(
        "div",
        { class: "thumbs" },
        images.slice(0, 60).map((img) =>
          h("figure", {}, h("img", { src: thumbUrl(img), alt: img.name, loading: "lazy" }), h("figcaption", {}, `${img.name} · ${img.role}${img.has_mask ? " · mask" : ""}`)),
        ),
      ),
      images.length > 60 ? h("p", { class: "muted" }, `… and ${images.length - 60} more`) : null,
    );
    return images;
  }

  root.appendChild(h("h2", {}, "Campaigns"));
  root.appendChild(campaignsBox);
  root.appendChild(h("h2", {}, "Start a campaign"));
  root.appendChild(
    campaignForm(projectId, (c) => {
      toast(`Campaign "${c.name}" started.`, "ok");
      location.hash = `#/campaigns/${c.id}`;
    }, () => images.filter((i) => i.role === "seed").length, () => images.find((i) => i.role === "seed")?.id ?? null),
  );
  root.appendChild(h("h2", {}, "Images"));
  root.appendChild(uploader(projectId, () => void refreshImages()));
  root.appendChild(imagesBox);
  await Promise.all([refreshCampaigns(), refreshImages()]);
};
