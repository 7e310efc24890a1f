// The KServe / Triton V2 Open Inference Protocol, REST binding
// (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol), with JSON
// tensors and the binary tensor data extension
// (https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md):
// request and response shapes, the body's two encodings, and the checks that turn a bad tensor
// into a 4xx naming the problem.
import { MIN_SIDE } from "../services/ingest/contract.js";
import os from "node:os";
import { z } from "zod";
import { InputError } from "./image.js";

const parameters = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional();
type Parameters = z.infer<typeof parameters>;

/** What the server metadata's `extensions` lists (V2 "Server Metadata"). */
export const EXTENSIONS = ["binary_tensor_data"] as const;

/**
 * The binary tensor data extension's request and response header: the byte length of the JSON
 * object at the start of the body; the tensors' raw bytes follow it. Absent: the body is JSON only.
 */
export const HEADER_LENGTH = "Inference-Header-Content-Length";

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
        // Absent when the tensor travels as binary data (parameters.binary_data_size).
        data: z.array(z.unknown()).optional(),
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

/** An output as JSON (`data`) or, with the extension, as binary (`parameters.binary_data_size` bytes after the JSON). */
export type ResponseOutput = TensorMetadata & { data?: number[]; parameters?: { binary_data_size: number } };

export interface InferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, string | number | boolean>;
  outputs: ResponseOutput[];
}

/** An infer request body split into its JSON request and the binary tensor bytes after it. */
export interface InferBody {
  request: InferRequest;
  /** The bytes after the JSON object (empty without the extension), the inputs' data in input order. */
  binary: Buffer;
}

/** The first failing field of a zod error as one line. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.length ? issue.path.join(".") : "body"}: ${issue.message}`;
}

export function parseInferRequest(body: unknown): InferRequest {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new InputError("infer request must be a JSON object with an inputs array");
  }
  const parsed = inferRequestSchema.safeParse(body);
  if (!parsed.success) throw new InputError(`bad infer request: ${firstIssue(parsed.error)}`);
  return parsed.data;
}

/**
 * Splits an infer body. With the `Inference-Header-Content-Length: n` header (binary tensor data
 * extension) the first n bytes are the JSON request and the rest is binary tensor data; without it
 * the whole body is the JSON request.
 * @param body the raw body (decompressed when it was sent gzip or deflate encoded)
 * @param headerLength the header's value, if sent
 * @throws InputError 400 naming the header or the JSON that is wrong
 */
export function parseInferBody(body: Buffer, headerLength: string | undefined): InferBody {
  if (headerLength === undefined) {
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      throw new InputError(
        `request body is not valid JSON (binary tensor data needs the ${HEADER_LENGTH} header giving the JSON part's length)`,
      );
    }
    return { request: parseInferRequest(json), binary: Buffer.alloc(0) };
  }
  if (!/^\d{1,15}$/.test(headerLength.trim())) {
    throw new InputError(`${HEADER_LENGTH} "${headerLength}" is not a byte count`);
  }
  const n = Number(headerLength.trim());
  if (n > body.length) {
    throw new InputError(`${HEADER_LENGTH} is ${n} bytes but the whole body holds ${body.length}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(body.subarray(0, n).toString("utf8"));
  } catch {
    throw new InputError(`the inference header (the first ${n} bytes, per ${HEADER_LENGTH}) is not valid JSON`);
  }
  return { request: parseInferRequest(json), binary: body.subarray(n) };
}

const LITTLE_ENDIAN = os.endianness() === "LE";

/** Little-endian float32 bytes (the extension's byte order) as a Float32Array (copied: the slice may be unaligned). */
function float32FromLE(bytes: Buffer): Float32Array {
  const out = new Float32Array(bytes.length / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
  else for (let k = 0; k < out.length; k++) out[k] = bytes.readFloatLE(4 * k);
  return out;
}

/** A Float32Array as little-endian bytes (a view, no copy, on little-endian machines). */
export function float32ToLE(data: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = Buffer.alloc(data.byteLength);
  data.forEach((v, k) => out.writeFloatLE(v, 4 * k));
  return out;
}

/** `binary_data_size` of a tensor's parameters: a non-negative integer byte count, or undefined. */
function binarySize(params: Parameters, what: string): number | undefined {
  const size = params?.binary_data_size;
  if (size === undefined) return undefined;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new InputError(`${what}: parameters.binary_data_size must be a non-negative integer byte count, not ${JSON.stringify(size)}`);
  }
  return size;
}

/** Refuses the parameters of extensions this server does not offer, instead of silently ignoring them. */
function refuseUnsupported(params: Parameters, what: string): void {
  for (const key of Object.keys(params ?? {})) {
    if (key.startsWith("shared_memory_")) {
      throw new InputError(`${what}: parameters.${key}: the shared-memory extension is not supported; send the tensor in the body`);
    }
  }
  if (params?.classification !== undefined) {
    throw new InputError(`${what}: parameters.classification: the classification extension is not supported`);
  }
}

/**
 * Checks the one image input (FP32, N×3×H×W, row-major) and returns it as a Float32Array. Its
 * data is either JSON (`data`, flat or nested) or binary: `parameters.binary_data_size` bytes of
 * little-endian float32 in `binary`, which must hold exactly the bytes the inputs declare.
 * @throws InputError 400 naming the input and the problem; 413 over `maxPixels` (N×H×W); 422 when
 *   H or W is under the ingest contract's minimum side (docs/ingest.md), as for image files
 */
export function imageTensor(
  body: InferBody,
  inputName: string,
  maxPixels: number,
): { data: Float32Array; shape: [number, number, number, number] } {
  const tensor = parseImageTensor(body, inputName, maxPixels);
  const [, , h, w] = tensor.shape;
  // Checked once the tensor is well-formed, so a malformed request is told what is malformed first.
  if (h < MIN_SIDE || w < MIN_SIDE) {
    throw new InputError(`input "${inputName}" is ${w}x${h} (W x H); the minimum side is ${MIN_SIDE} pixels`, 422);
  }
  return tensor;
}

function parseImageTensor(
  body: InferBody,
  inputName: string,
  maxPixels: number,
): { data: Float32Array; shape: [number, number, number, number] } {
  const { request: req, binary } = body;
  const unknown = req.inputs.find((i) => i.name !== inputName);
  if (unknown) throw new InputError(`unknown input "${unknown.name}": this model takes one input "${inputName}"`);
  if (req.inputs.length !== 1) throw new InputError(`input "${inputName}" is given ${req.inputs.length} times`);
  const input = req.inputs[0]!;
  const what = `input "${inputName}"`;
  refuseUnsupported(input.parameters, what);
  const size = binarySize(input.parameters, what);
  if (input.datatype !== "FP32") {
    throw new InputError(`${what} has datatype ${input.datatype}; expected FP32`);
  }
  const s = input.shape;
  if (s.length !== 4 || s[1] !== 3 || s.some((d) => d < 1)) {
    throw new InputError(`${what} has shape [${s.join(", ")}]; expected [N, 3, H, W] (RGB, N, H, W >= 1)`);
  }
  const [n, , h, w] = s as [number, number, number, number];
  if (n * h * w > maxPixels) {
    throw new InputError(`${what} holds ${n * h * w} pixels; the limit is ${maxPixels}`, 413);
  }
  const expected = n * 3 * h * w;
  if (size === undefined) {
    if (binary.length > 0) {
      throw new InputError(`the body holds ${binary.length} bytes of binary data after the JSON but no input declares parameters.binary_data_size`);
    }
    if (input.data === undefined) throw new InputError(`${what} has neither data nor parameters.binary_data_size`);
    // The specification allows the data nested by shape or flat; both are row-major.
    const flat = input.data.flat(Infinity as 1) as unknown[];
    if (flat.length !== expected) {
      throw new InputError(`${what} has ${flat.length} values; shape [${s.join(", ")}] needs ${expected}`);
    }
    const data = new Float32Array(expected);
    for (let k = 0; k < expected; k++) {
      const v = flat[k];
      if (typeof v !== "number" || !Number.isFinite(v)) throw new InputError(`${what} value ${k} is not a finite number`);
      data[k] = v;
    }
    return { data, shape: [n, 3, h, w] };
  }
  if (input.data !== undefined) throw new InputError(`${what} has both data and parameters.binary_data_size; send one`);
  if (size !== expected * 4) {
    throw new InputError(`${what}: binary_data_size is ${size} bytes; shape [${s.join(", ")}] of FP32 needs ${expected * 4}`);
  }
  if (binary.length !== size) {
    throw new InputError(`the body holds ${binary.length} bytes of binary data after the JSON; the inputs declare ${size}`);
  }
  const data = float32FromLE(binary);
  for (let k = 0; k < data.length; k++) {
    if (!Number.isFinite(data[k]!)) throw new InputError(`${what} value ${k} is not a finite number`);
  }
  return { data, shape: [n, 3, h, w] };
}

/**
 * Whether an output is answered as binary data: its own `binary_data` parameter, else the
 * request's `binary_data_output`, else JSON (the extension's rules). Also refuses the output
 * parameters of extensions this server does not offer.
 * @throws InputError 400 when a flag is not a boolean or an unsupported extension is asked for
 */
export function outputAsBinary(req: InferRequest, outputName: string): boolean {
  const output = req.outputs?.find((o) => o.name === outputName);
  const what = `output "${outputName}"`;
  refuseUnsupported(output?.parameters, what);
  const own = output?.parameters?.binary_data;
  if (own !== undefined) {
    if (typeof own !== "boolean") throw new InputError(`${what}: parameters.binary_data must be true or false`);
    return own;
  }
  const all = req.parameters?.binary_data_output;
  if (all !== undefined && typeof all !== "boolean") {
    throw new InputError("parameters.binary_data_output must be true or false");
  }
  return all ?? false;
}
