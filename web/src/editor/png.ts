// Mask PNGs in the browser. The server stores masks as one-channel PNGs with 0 and 255;
// the canvas writes RGBA PNGs whose channels are all 0 or all 255 and opaque, which the
// server reads as the same binary mask.

import { createMask, type Mask } from "../../../services/correction/raster.js";

export async function decodeImage(blob: Blob): Promise<ImageBitmap> {
  // No colour management or premultiplication: a mask's 0/255 must stay 0/255.
  return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
}

/** Reads a mask PNG: a pixel is foreground when its red channel is above 127. */
export async function decodeMaskPng(blob: Blob, width: number, height: number): Promise<Mask> {
  const bitmap = await decodeImage(blob);
  if (bitmap.width !== width || bitmap.height !== height) {
    throw new Error(`the mask is ${bitmap.width}×${bitmap.height} but the image is ${width}×${height}`);
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const mask = createMask(width, height);
  for (let i = 0; i < mask.data.length; i++) mask.data[i] = rgba[i * 4]! > 127 ? 1 : 0;
  return mask;
}

export async function encodeMaskPng(mask: Mask): Promise<Blob> {
  const canvas = document.createElement("canvas");
  canvas.width = mask.width;
  canvas.height = mask.height;
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(mask.width, mask.height);
  const px = new Uint32Array(img.data.buffer);
  const on = 0xffffffff;
  const off = 0xff000000; // opaque black (little-endian RGBA)
  for (let i = 0; i < mask.data.length; i++) px[i] = mask.data[i] ? on : off;
  ctx.putImageData(img, 0, 0);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the browser could not encode the mask"))), "image/png"),
  );
}
