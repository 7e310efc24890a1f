// The page side of benchmarks/ui_stroke.ts: the real editor on a 999×960 image, with the
// time of every input event, of the editor's handling and of every repaint recorded.
// Not part of the app's build (served by Vite's dev server for the benchmark only).

import "../src/style.css";
import { Editor } from "../src/editor/editor.js";
import { decodeImage } from "../src/editor/png.js";
import { createMask } from "../../services/correction/raster.js";

interface Frame {
  /** Editor work for the events of this frame (stamping, recolouring the layer), ms. */
  handleMs: number;
  /** The repaint of the frame (clip to the dirty rectangle, draw, flush), ms. */
  paintMs: number;
  /** From the first input event of the frame to the painted frame, ms. */
  latencyMs: number;
  events: number;
}

const frames: Frame[] = [];
let pending: number[] = [];
let handleMs = 0;
let t0 = 0;

async function setup(imageBase64: string, view: "fit" | "zoom4", brushSize: number): Promise<void> {
  const bytes = Uint8Array.from(atob(imageBase64), (c) => c.charCodeAt(0));
  const image = await decodeImage(new Blob([bytes], { type: "image/jpeg" }));
  const stage = document.getElementById("stage")!;
  stage.replaceChildren();
  const editor = new Editor({ mask: createMask(image.width, image.height), image });
  editor.root.style.position = "absolute";
  editor.root.style.inset = "0";
  stage.appendChild(editor.root);
  editor.resize();
  editor.fitView();
  if (view === "zoom4") editor.view = { scale: 4, tx: -1500, ty: -1400 };
  editor.setBrushSize(brushSize);
  const renderer = editor.renderer;
  const paint = renderer.paint.bind(renderer);
  renderer.paint = () => {
    const start = performance.now();
    paint();
    renderer.ctx.getImageData(0, 0, 1, 1); // wait until the canvas really holds the frame
    const end = performance.now();
    if (pending.length) frames.push({ handleMs, paintMs: end - start, latencyMs: end - Math.min(...pending), events: pending.length });
    pending = [];
    handleMs = 0;
  };
  // Capture runs before the editor's listener, bubbling on window after it.
  window.addEventListener("pointermove", (e) => {
    pending.push(e.timeStamp);
    t0 = performance.now();
  }, { capture: true });
  window.addEventListener("pointermove", () => (handleMs += performance.now() - t0));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  frames.length = 0;
  pending = [];
  handleMs = 0;
  (window as unknown as { benchEditor: Editor }).benchEditor = editor;
}

function results(): Frame[] {
  return frames.splice(0);
}

Object.assign(window, { benchSetup: setup, benchResults: results });
document.title = "ready";
