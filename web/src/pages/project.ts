// One project: its images (upload by drag and drop, with progress), its campaigns and
// the form that starts a new campaign.

import { ApiError, api, asList, uploadWithProgress } from "../api/client.js";
import type { Campaign, ImageRow, Project } from "../api/types.js";
import { fill, formatDate, h, toast } from "../ui/dom.js";
import { campaignForm } from "./campaignForm.js";
import type { Page } from "./page.js";
import { ACCEPT, clashMessage, FORMATS_TEXT, mediaTypeOf, pairUploads, planMasks } from "./uploadPairs.js";

function thumbUrl(img: ImageRow & { thumbnail_url?: string }): string {
  const token = localStorage.getItem("medloop.token") ?? "";
  const base = img.thumbnail_url ?? `/api/images/${img.id}/thumbnail`;
  return `${base}${base.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
}

function uploader(projectId: number, onDone: () => void): HTMLElement {
  const role = h("select", { name: "role" }, ["pool", "seed", "test"].map((r) => h("option", { value: r }, r)));
  const maskSuffix = h("input", { name: "maskSuffix", value: "_mask", size: 10, "data-testid": "mask-suffix" });
  const list = h("div", { class: "uploads", "data-testid": "uploads" });
  const input = h("input", { type: "file", multiple: true, accept: ACCEPT, "data-testid": "file-input" });
  const maskInput = h("input", { type: "file", multiple: true, accept: ACCEPT, "data-testid": "mask-file-input" });
  const waitingLine = h("p", { class: "muted", "data-testid": "waiting-masks" });
  // Masks from the reference masks zone whose image is not in the project yet: the next drop of
  // images takes them. A new drop of masks replaces them.
  let waiting: File[] = [];

  const zone = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone" },
    h("p", {}, `Drop fundus images here (${FORMATS_TEXT}), or `, input),
    h("label", { class: "check" }, "Role of the uploaded images: ", role),
    h("label", { class: "check" }, "Reference masks dropped with them are named like the image plus ", maskSuffix),
  );
  const maskZone = h(
    "div",
    { class: "dropzone", "data-testid": "mask-dropzone" },
    h("p", {}, "Reference masks from a separate folder: drop them here, or ", maskInput),
    h(
      "p",
      { class: "muted" },
      "Named like their image (the same file names) or like the image plus the suffix above. A mask whose image is already " +
        "in the project is stored with it now; the others wait for their image's drop.",
    ),
    waitingLine,
  );

  function row(text: string): { label: HTMLElement; bar: HTMLElement } {
    const bar = h("div", { style: { width: "0%" } });
    const label = h("span", {}, text);
    list.appendChild(h("div", { class: "upload" }, label, h("div", { class: "progress" }, bar)));
    return { label, bar };
  }

  function failed(text: string): void {
    row(text).label.className = "error";
  }

  function showWaiting(): void {
    if (waiting.length === 0) {
      waitingLine.replaceChildren();
      return;
    }
    const forget = h("button", { type: "button", class: "link", onclick: () => ((waiting = []), showWaiting()) }, "Forget them");
    const which = waiting.length === 1 ? "mask waits for its image" : "masks wait for their images";
    waitingLine.replaceChildren(`${waiting.length} ${which}: ${waiting.map((f) => f.name).join(", ")}. `, forget);
  }

  function notImages(files: File[]): void {
    for (const f of files) failed(`${f.name}: not sent, not a ${FORMATS_TEXT} file`);
  }

  async function sendImages(files: File[]): Promise<void> {
    const { pairs, orphanMasks, clashes, skipped, usedWaiting } = pairUploads(files, maskSuffix.value, waiting);
    notImages(skipped);
    if (clashes.length > 0) {
      failed(clashMessage(clashes, "image"));
      return;
    }
    for (const orphan of orphanMasks) failed(`${orphan.name}: not sent, the image it is the mask of is not in this drop`);
    waiting = waiting.filter((f) => !usedWaiting.includes(f));
    showWaiting();
    for (const { image, mask, name } of pairs) {
      const title = mask ? `${image.name} + ${mask.name}` : image.name;
      const { label, bar } = row(`${title}: 0%`);
      const form = new FormData();
      form.append("name", name);
      form.append("role", role.value);
      form.append("image", new Blob([image], { type: mediaTypeOf(image.name) }), image.name);
      if (mask) form.append("mask", new Blob([mask], { type: mediaTypeOf(mask.name) }), mask.name);
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

  async function sendMasks(files: File[]): Promise<void> {
    const images = asList<ImageRow>(await api.get(`/projects/${projectId}/images`), "images");
    const { toExisting, waiting: unmatched, clashes, skipped } = planMasks(files, maskSuffix.value, images);
    notImages(skipped);
    if (clashes.length > 0) {
      failed(clashMessage(clashes, "mask"));
      return;
    }
    waiting = unmatched;
    showWaiting();
    for (const { mask, image } of toExisting) {
      const { label, bar } = row(`${mask.name} → ${image.name}: sending`);
      try {
        await api.put(`/images/${image.id}/mask`, new Blob([mask], { type: mediaTypeOf(mask.name) }));
        bar.style.width = "100%";
        label.textContent = `${mask.name}: stored as the reference mask of ${image.name}`;
      } catch (err) {
        label.textContent = `${mask.name} → ${image.name}: ${err instanceof ApiError ? err.message : String(err)}`;
        label.className = "error";
      }
    }
    if (toExisting.length > 0) onDone();
  }

  const dropTarget = (el: HTMLElement, send: (files: File[]) => Promise<void>): void => {
    el.addEventListener("dragover", (e) => {
      e.preventDefault();
      el.classList.add("over");
    });
    el.addEventListener("dragleave", () => el.classList.remove("over"));
    el.addEventListener("drop", (e) => {
      e.preventDefault();
      el.classList.remove("over");
      void send([...(e.dataTransfer?.files ?? [])]);
    });
  };
  dropTarget(zone, sendImages);
  dropTarget(maskZone, sendMasks);
  input.addEventListener("change", () => void sendImages([...(input.files ?? [])]));
  maskInput.addEventListener("change", () => void sendMasks([...(maskInput.files ?? [])]));
  return h("div", {}, h("div", { class: "dropzones" }, zone, maskZone), list);
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

  // Built before the images arrive: refreshImages tells it the seeds each time the list loads.
  const form = campaignForm(projectId, (c) => {
    toast(`Campaign "${c.name}" started.`, "ok");
    location.hash = `#/campaigns/${c.id}`;
  });

  async function refreshImages(): Promise<ImageRow[]> {
    images = asList<ImageRow>(await api.get(`/projects/${projectId}/images`), "images");
    const seeds = images.filter((i) => i.role === "seed");
    form.setSeeds({ count: seeds.length, firstId: seeds[0]?.id ?? null });
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
  root.appendChild(form.element);
  root.appendChild(h("h2", {}, "Images"));
  root.appendChild(uploader(projectId, () => void refreshImages()));
  root.appendChild(imagesBox);
  await Promise.all([refreshCampaigns(), refreshImages()]);
};
