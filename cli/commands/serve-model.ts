// `medloop serve-model --deployment NAME [--port N]`: serves one deployment in a process of its
// own (V2 inference protocol, segment endpoint, /metrics) until Ctrl-C or SIGTERM.
import { startModelServer } from "../../serving/standalone.js";
import { guard, intOption, parse, UsageError } from "../args.js";
import { connect } from "../connect.js";

export const summary = "serve a deployed model over HTTP (KServe V2 protocol) in its own process";

const usage = `usage: medloop serve-model --deployment NAME [--port N] [--host H] [--threads N] [--rate N] [--burst N] [--data DIR]
  --deployment NAME  the deployment to serve (its latest active version; others by /versions/V)
  --port N           port to listen on (default 8500; 0 picks a free one)
  --host H           address to listen on (default 127.0.0.1)
  --threads N        onnxruntime threads (default: all cores)
  --rate N           requests per second per API key (default 10)
  --burst N          burst of requests per API key (default 20)
  --data DIR         data folder of the running stack (default .data)`;

export async function run(argv: string[]): Promise<number> {
  return guard("serve-model", usage, async () => {
    const { values } = parse(argv, {
      deployment: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      threads: { type: "string" },
      rate: { type: "string" },
      burst: { type: "string" },
      data: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (!values.deployment) throw new UsageError("--deployment is required");
    const port = intOption("port", values.port, 8500, 0);
    const threads = values.threads === undefined ? undefined : intOption("threads", values.threads, 1);
    const rateLimit = { perSecond: intOption("rate", values.rate, 10), burst: intOption("burst", values.burst, 20) };
    const services = await connect(values.data);
    let server;
    try {
      server = await startModelServer(services, { deployment: values.deployment, port, host: values.host, threads, rateLimit });
    } catch (err) {
      await services.close();
      throw err;
    }
    console.log(`serving ${values.deployment} v${server.version} on ${server.url} (${server.provider})`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await server.close();
    await services.close();
    console.log("stopped");
    return 0;
  });
}
