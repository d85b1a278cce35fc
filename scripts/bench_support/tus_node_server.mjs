// Peer: @tus/server with @tus/file-store, the standalone setup of @tus/server's README.
// scripts/bench installs both into .bench/node (not a project dependency) and runs
//   BENCH_NODE_DIR=.bench/node node scripts/bench_support/tus_node_server.mjs PORT DIR
// Bare imports resolve from the importing file's folder, so the packages are resolved from
// BENCH_NODE_DIR explicitly.
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [port, directory] = process.argv.slice(2);
const resolve = createRequire(path.join(process.env.BENCH_NODE_DIR, "package.json")).resolve;
const load = (name) => import(pathToFileURL(resolve(name)).href);

const { Server } = await load("@tus/server");
const { FileStore } = await load("@tus/file-store");

const server = new Server({ path: "/files", datastore: new FileStore({ directory }) });
server.listen({ host: "127.0.0.1", port: Number(port) });
