// The UI uploader's pairing (web/src/pages/uploadPairs.ts) on every field case's real file names
// (../shared/fieldcases, read in place): the images and masks of a case, dropped as one drop when
// the masks carry a suffix, or as images plus a separate mask folder, pair exactly as cases.json
// pairs them; one stem twice (fc15) refuses the drop naming the stem. Whether a pair is then stored
// or refused is the server's (test/api/fieldcases.test.ts).
import { readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { pairUploads, planMasks } from "../../web/src/pages/uploadPairs.js";
import { caseFile, loadCases, type FieldCase } from "../helpers/fieldcases.js";

const filesOf = (c: FieldCase, folder: string) => readdirSync(caseFile(c.id, folder)).map((name) => ({ name: `${folder}/${name}` }));
const expectedPairs = (c: FieldCase) =>
  c.items.filter((i) => !i.duplicate).map((i) => [path.parse(i.image).name, i.image, i.mask]).sort();

describe("the uploader pairs every field case as the case does", () => {
  for (const c of loadCases().filter((c) => c.id !== "fc15")) {
    it(`${c.id} ${c.title}: images and a separate mask folder`, () => {
      // Masks first, into the reference masks zone of an empty project: they wait for their images.
      const plan = planMasks(filesOf(c, "masks"), c.mask_suffix, []);
      expect(plan.clashes).toEqual([]);
      const drop = pairUploads(filesOf(c, "images"), c.mask_suffix, plan.waiting);
      expect(drop.clashes).toEqual([]);
      expect(drop.pairs.map((p) => [p.name, p.image.name, p.mask?.name]).sort()).toEqual(expectedPairs(c));
    });

    if (c.mask_suffix) {
      it(`${c.id} ${c.title}: images and masks in one drop, paired by the suffix "${c.mask_suffix}"`, () => {
        const drop = pairUploads([...filesOf(c, "masks"), ...filesOf(c, "images")], c.mask_suffix);
        expect(drop.clashes).toEqual([]);
        expect(drop.orphanMasks).toEqual([]);
        expect(drop.pairs.map((p) => [p.name, p.image.name, p.mask?.name]).sort()).toEqual(expectedPairs(c));
      });
    }
  }

  it("fc15 one stem twice in one upload: the drop is refused naming the stem", () => {
    const fc15 = loadCases().find((c) => c.id === "fc15")!;
    const drop = pairUploads(filesOf(fc15, "images"), "", planMasks(filesOf(fc15, "masks"), "", []).waiting);
    expect(drop.clashes.map((k) => [k.stem, k.files.map((f) => f.name).sort()])).toEqual([["eye_03", ["images/eye_03.png", "images/eye_03.tif"]]]);
    // Two different files both named eye_04.png, dropped from two folders at once.
    const twice = pairUploads([{ name: "images/eye_04.png" }, { name: "images_b/eye_04.png" }], "");
    expect(twice.clashes.map((k) => k.stem)).toEqual(["eye_04"]);
  });
});
