// `medloop audit verify|head`: checks the audit log's hash chain (services/auditChain.ts) and
// prints its head for safekeeping. verify exits 0 when the chain holds and 1 naming the first
// row where it breaks; `--head SEQ:HASH` (a head printed earlier) also checks that the chain
// still holds that row as it was.
import { auditChainHead, verifyAuditChain } from "../../services/auditChain.js";
import { guard, parse, UsageError } from "../args.js";
import { connect } from "../connect.js";

export const summary = "verify the audit log's hash chain (exit 1 naming the first broken row), or print its head to keep";

const usage = `usage: medloop audit verify [--head SEQ:HASH] [--data DIR] [--json]
       medloop audit head [--data DIR]
  verify        recompute the whole chain; exit 0 when it holds, 1 naming the first broken row
  head          print the chain's head (SEQ:HASH) to keep somewhere else
  --head H      a head printed earlier: the chain must still hold that row as it was
  --data DIR    data folder of the running stack (default .data)
  --json        print the report as JSON`;

function parseHead(raw: string): { chain_seq: number; hash: string } {
  const m = /^(\d+):([0-9a-f]{64})$/.exec(raw.trim());
  if (!m) throw new UsageError(`--head must look like SEQ:HASH (as medloop audit head prints it), got "${raw}"`);
  return { chain_seq: Number(m[1]), hash: m[2]! };
}

export async function run(argv: string[]): Promise<number> {
  return guard("audit", usage, async () => {
    const { values, positionals } = parse(
      argv,
      { data: { type: "string" }, json: { type: "boolean" }, head: { type: "string" }, help: { type: "boolean", short: "h" } },
      true,
    );
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const [action, ...extra] = positionals;
    if (extra.length > 0 || (action !== "verify" && action !== "head")) throw new UsageError("give one action: verify or head");
    if (action === "head" && values.head !== undefined) throw new UsageError("--head goes with verify");
    const expect = values.head === undefined ? undefined : parseHead(values.head);
    const services = await connect(values.data);
    try {
      if (action === "head") {
        const head = await auditChainHead(services.pool);
        if (!head) {
          console.log("the audit log is empty");
          return 0;
        }
        console.log(values.json ? JSON.stringify(head) : `${head.chain_seq}:${head.hash}`);
        return 0;
      }
      const report = await verifyAuditChain(services.pool, expect);
      if (values.json) console.log(JSON.stringify(report, null, 2));
      else if (report.ok) {
        console.log(`the audit chain holds: ${report.rows} rows${report.head ? `, head ${report.head.chain_seq}:${report.head.hash}` : ""}`);
      } else {
        const b = report.broken!;
        console.error(`the audit chain is broken at row ${b.id}${b.chain_seq === null ? "" : ` (chain position ${b.chain_seq})`}: ${b.reason}; ${report.rows} rows before it hold`);
      }
      return report.ok ? 0 : 1;
    } finally {
      await services.close();
    }
  });
}
