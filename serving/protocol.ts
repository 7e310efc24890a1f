// The KServe / Triton V2 Open Inference Protocol, REST binding with JSON tensors
// (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol):
// request and response shapes and the checks that turn a bad tensor into a 4xx naming the problem.
import { z } from "zod";
import { InputError } from "./image.js";

const parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();


export const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters,
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number().int().min(0)),
        datatype: z.string(),
        parameters,
        // Checked element by element in imageTensor: zod over millions of numbers is slow.
        data: z.array(z.unknown()),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters })).optional(),
});
export type InferRequest = z.infer<typeof inferRequestSchema>;

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface InferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, string | number | boolean>;
  outputs: Array<TensorMetadata & { data: number[] }>;
}

/** The first failing field of a zod error as one line. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.length ? issue.path.join(".") : "body"}: ${issue.message}`;
}

export function parseInferRequest(body: unknown): InferRequest {
  if (body === undefined || body === null || typeof body !== "object") {
    throw new InputError("infer request must be a JSON object with an inputs array");
  }
  const parsed = inferRequestSchema.safeParse(body);
  if (!parsed.success) throw new InputError(`bad infer request: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/** Checks the one image input (FP32, N×3×H×W, row-major data) and returns it as a Float32Array. */
export function imageTensor(
  req: InferRequest,
  inputName: string,
  maxPixels: number,
): { data: Float32Array; shape: [number, number, number, number] } {
  const unknown = req.inputs.find((i) => i.name !== inputName);
  if (unknown) throw new InputError(`unknown input "${unknown.name}": this model takes one input "${inputName}"`);
  if (req.inputs.length !== 1) throw new InputError(`input "${inputName}" is given ${req.inputs.length} times`);
  const input = req.inputs[0]!;
  if (input.datatype !== "FP32") {
    throw new InputError(`input "${inputName}" has datatype ${input.datatype}; expected FP32`);
  }
  const s = input.shape;
  if (s.length !== 4 || s[1] !== 3 || s.some((d) => d < 1)) {
    throw new InputError(`input "${inputName}" has shape [${s.join(", ")}]; expected [N, 3, H, W] (RGB, N, H, W >= 1)`);
  }
  const [n, , h, w] = s as [number, number, number, number];
  if (n * h * w > maxPixels) {
    throw new InputError(`input "${inputName}" holds ${n * h * w} pixels; the limit is ${maxPixels}`, 413);
  }
  // The specification allows the data nested by shape or flat; both are row-major.
  const flat = input.data.flat(Infinity as 1) as unknown[];
  const expected = n * 3 * h * w;
  if (flat.length !== expected) {
    throw new InputError(`input "${inputName}" has ${flat.length} values; shape [${s.join(", ")}] needs ${expected}`);
  }
  const data = new Float32Array(expected);
  for (let k = 0; k < expected; k++) {
    const v = flat[k];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new InputError(`input "${inputName}" value ${k} is not a finite number`);
    }
    data[k] = v;
  }
  return { data, shape: [n, 3, h, w] };
}
