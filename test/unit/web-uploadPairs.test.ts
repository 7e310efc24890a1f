import { describe, expect, it } from "vitest";
import { pairUploads } from "../../web/src/pages/uploadPairs.js";

const file = (name: string) => ({ name });

describe("pairing dropped images with their reference masks", () => {
  it("pairs each mask with the image whose name it extends by the suffix, in any order", () => {
    const { pairs, orphanMasks } = pairUploads(
      [file("Image_01L_1stHO.png"), file("Image_01L.jpg"), file("Image_02R.jpg"), file("Image_02R_1stHO.png"), file("Image_03L.jpg")],
      "_1stHO",
    );
    expect(pairs.map((p) => [p.name, p.image.name, p.mask?.name ?? null])).toEqual([
      ["Image_01L", "Image_01L.jpg", "Image_01L_1stHO.png"],
      ["Image_02R", "Image_02R.jpg", "Image_02R_1stHO.png"],
      ["Image_03L", "Image_03L.jpg", null],
    ]);
    expect(orphanMasks).toEqual([]);
  });

  it("reports masks whose image is not in the drop, and a second mask for the same image", () => {
    const { pairs, orphanMasks } = pairUploads(
      [file("a.png"), file("a_mask.png"), file("a_mask.tif"), file("b_mask.png")],
      "_mask",
    );
    expect(pairs.map((p) => [p.name, p.mask?.name ?? null])).toEqual([["a", "a_mask.png"]]);
    expect(orphanMasks.map((f) => f.name)).toEqual(["a_mask.tif", "b_mask.png"]);
  });

  it("treats every file as an image when the suffix is empty, and a file named only the suffix as an image", () => {
    expect(pairUploads([file("x_mask.png"), file("x.png")], " ").pairs.map((p) => p.name)).toEqual(["x_mask", "x"]);
    expect(pairUploads([file("_mask.png")], "_mask").pairs.map((p) => p.name)).toEqual(["_mask"]);
  });
});
