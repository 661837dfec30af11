// Validate Prometheus Operator objects (JSON, one per line on stdin) with the CRDs' own OpenAPI
// types (@kubernetes-models/prometheus-operator, generated from the operator's CRDs): types,
// required fields and enums, as the API server checks them. Prints one line per object:
// "ok <Kind>/<name>" or "invalid <Kind>/<name>: <errors>". Usage: node crd_types.mjs <package dir>
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const pkg = process.argv[2];
const kinds = {};
for (const kind of ["ServiceMonitor", "PrometheusRule"]) {
  const mod = await import(pathToFileURL(join(pkg, "monitoring.coreos.com/v1", `${kind}.js`)));
  kinds[kind] = mod[kind];
}
let failed = false;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const obj = JSON.parse(line);
  const ref = `${obj.kind}/${obj.metadata?.name}`;
  const Model = kinds[obj.kind];
  if (!Model) { console.log(`invalid ${ref}: no type for this kind`); failed = true; continue; }
  try {
    new Model(obj).validate();
    console.log(`ok ${ref}`);
  } catch (err) {
    console.log(`invalid ${ref}: ${err.message.replace(/\s+/g, " ")}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
