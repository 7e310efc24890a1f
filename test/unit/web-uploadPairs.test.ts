import { describe, expect, it } from "vitest";
import { ACCEPT, clashMessage, maskTarget, mediaTypeOf, pairUploads, planMasks } from "../../web/src/pages/uploadPairs.js";

const file = (name: string) => ({ name });
const names = (files: Array<{ name: string }>) => files.map((f) => f.name);

describe("pairing dropped images with their reference masks", () => {
  it("pairs each mask with the image whose name it extends by the suffix, in any order", () => {
    const { pairs, orphanMasks, clashes } = pairUploads(
      [file("Image_01L_1stHO.png"), file("Image_01L.jpg"), file("Image_02R.jpg"), file("Image_02R_1stHO.png"), file("Image_03L.jpg")],
      "_1stHO",
    );
    expect(pairs.map((p) => [p.name, p.image.name, p.mask?.name ?? null])).toEqual([
      ["Image_01L", "Image_01L.jpg", "Image_01L_1stHO.png"],
      ["Image_02R", "Image_02R.jpg", "Image_02R_1stHO.png"],
      ["Image_03L", "Image_03L.jpg", null],
    ]);
    expect(orphanMasks).toEqual([]);
    expect(clashes).toEqual([]);
  });

  it("reports masks whose image is not in the drop, and refuses two masks for one image by name", () => {
    const { pairs, orphanMasks, clashes } = pairUploads([file("a.png"), file("a_mask.png"), file("a_mask.tif"), file("b_mask.png")], "_mask");
    expect(pairs.map((p) => [p.name, p.mask?.name ?? null])).toEqual([["a", null]]);
    expect(names(orphanMasks)).toEqual(["b_mask.png"]);
    expect(clashes.map((c) => [c.stem, names(c.files)])).toEqual([["a_mask", ["a_mask.png", "a_mask.tif"]]]);
  });

  it("treats every file as an image when the suffix is empty, and a file named only the suffix as an image", () => {
    expect(pairUploads([file("x_mask.png"), file("x.png")], " ").pairs.map((p) => p.name)).toEqual(["x", "x_mask"]);
    expect(pairUploads([file("_mask.png")], "_mask").pairs.map((p) => p.name)).toEqual(["_mask"]);
  });

  it("refuses a stem given twice, naming it (eye_03.png + eye_03.tif)", () => {
    const { clashes } = pairUploads([file("eye_01.png"), file("eye_03.png"), file("eye_03.tif")], "");
    expect(clashes.map((c) => c.stem)).toEqual(["eye_03"]);
    expect(clashMessage(clashes, "image")).toBe(
      'Nothing sent: image stem "eye_03" has 2 files: eye_03.png, eye_03.tif. Each image must appear once; remove the extra files and drop again.',
    );
    // Images and masks from two folders dropped together on the images zone with the same names clash too:
    // they belong on the reference masks zone.
    expect(pairUploads([file("eye_01.png"), file("eye_01.gif")], "_mask").clashes.map((c) => c.stem)).toEqual(["eye_01"]);
  });

  it("reads names the contract's way: NFC, extensions in any case, the contract's formats only", () => {
    const decomposed = "Ope\u0301ration"; // é written as e + combining accent (macOS)
    const { pairs, skipped } = pairUploads(
      [file(`${decomposed}.PNG`), file("Op\u00e9ration_mask.Tif"), file("notes.txt"), file(".DS_Store"), file("scan.ppm"), file("scan_mask.pgm")],
      "_mask",
    );
    expect(pairs.map((p) => [p.name, p.mask?.name ?? null])).toEqual([
      ["Op\u00e9ration", "Op\u00e9ration_mask.Tif"],
      ["scan", "scan_mask.pgm"],
    ]);
    expect(names(skipped)).toEqual(["notes.txt", ".DS_Store"]);
    expect(ACCEPT.split(",")).toEqual(expect.arrayContaining([".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp", ".ppm", ".pgm", ".webp"]));
    expect(["a.PPM", "a.pgm", "a.webp", "a.TIFF", "a.gif", "a.bmp", "a.jpe", "a.bin"].map(mediaTypeOf)).toEqual([
      "image/x-portable-anymap",
      "image/x-portable-anymap",
      "image/webp",
      "image/tiff",
      "image/gif",
      "image/bmp",
      "image/jpeg",
      "application/octet-stream",
    ]);
  });

  it("gives an image of the drop the waiting mask from a separate folder with the same name", () => {
    const waiting = [file("eye_01.png"), file("eye_02_mask.png"), file("eye_09.png")];
    const { pairs, usedWaiting, orphanMasks, clashes } = pairUploads([file("eye_01.jpg"), file("eye_02.jpg"), file("eye_03.jpg")], "_mask", waiting);
    expect(pairs.map((p) => [p.name, p.mask?.name ?? null])).toEqual([
      ["eye_01", "eye_01.png"],
      ["eye_02", "eye_02_mask.png"],
      ["eye_03", null],
    ]);
    expect(names(usedWaiting)).toEqual(["eye_01.png", "eye_02_mask.png"]);
    expect([orphanMasks, clashes]).toEqual([[], []]);
    // A mask in the drop and a waiting one for the same image: refused, not guessed.
    const both = pairUploads([file("eye_01.jpg"), file("eye_01_mask.png")], "_mask", [file("eye_01.png")]);
    expect(both.clashes.map((c) => [c.stem, names(c.files)])).toEqual([["eye_01", ["eye_01_mask.png", "eye_01.png"]]]);
  });
});

describe("planning a drop of masks from a separate folder", () => {
  const project = [
    { id: 1, name: "eye_01" },
    { id: 2, name: "eye_02" },
    { id: 3, name: "Op\u00e9ration" },
  ];

  it("pairs masks with the project's images by name, with or without the suffix, and keeps the rest waiting", () => {
    const plan = planMasks([file("eye_01.png"), file("eye_02_mask.gif"), file("Ope\u0301ration.tif"), file("eye_07.png"), file("read.me")], "_mask", project);
    expect(plan.toExisting.map((t) => [t.mask.name, t.image.id])).toEqual([
      ["Ope\u0301ration.tif", 3],
      ["eye_01.png", 1],
      ["eye_02_mask.gif", 2],
    ]);
    expect(names(plan.waiting)).toEqual(["eye_07.png"]);
    expect(names(plan.skipped)).toEqual(["read.me"]);
    expect(plan.clashes).toEqual([]);
  });

  it("refuses a drop with two masks for one image, naming it", () => {
    const plan = planMasks([file("eye_03.png"), file("eye_03.tif"), file("eye_01.png"), file("eye_01_mask.png")], "_mask", project);
    expect(plan.clashes.map((c) => [c.stem, names(c.files)])).toEqual([
      ["eye_01", ["eye_01.png", "eye_01_mask.png"]],
      ["eye_03", ["eye_03.png", "eye_03.tif"]],
    ]);
    expect(clashMessage(plan.clashes, "mask")).toContain('mask stem "eye_03" has 2 files: eye_03.png, eye_03.tif');
  });

  it("with an empty suffix, a mask's name is its image's name", () => {
    expect(maskTarget("eye_01_mask.png", "")).toBe("eye_01_mask");
    expect(maskTarget("eye_01_mask.png", " _mask ")).toBe("eye_01");
    expect(maskTarget("_mask.png", "_mask")).toBe("_mask");
  });
});
