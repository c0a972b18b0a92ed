// Toxiproxy's Node client (npm toxiproxy-node-client) against edgefault's Toxiproxy API: create a proxy,
// add, read, update and remove a toxic whose effect on a TCP echo server is measured, disable and enable,
// populate, reset, delete.
//
// Usage: node toxiproxy_node.js API_URL ECHO_ADDR (NODE_PATH holds node_modules). Prints one JSON line of
// what it measured; any failed check exits non-zero with the reason.
"use strict";

const net = require("net");
const assert = require("assert");
const { Toxiproxy } = require("toxiproxy-node-client");

function roundTrip(listen, msg = "ping") {
  const i = listen.lastIndexOf(":");
  const [host, port] = [listen.slice(0, i), Number(listen.slice(i + 1))];
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const s = net.connect({ host, port }, () => s.write(msg));
    let got = "";
    s.setTimeout(10000, () => reject(new Error("echo timed out")));
    s.on("data", (d) => {
      got += d.toString();
      if (got.length >= msg.length) {
        s.destroy();
        assert.strictEqual(got, msg);
        resolve(Number(process.hrtime.bigint() - start) / 1e6);
      }
    });
    s.on("error", reject);
  });
}

function refused(listen) {
  const i = listen.lastIndexOf(":");
  return new Promise((resolve) => {
    const s = net.connect({ host: listen.slice(0, i), port: Number(listen.slice(i + 1)) });
    s.on("connect", () => { s.destroy(); resolve(false); });
    s.on("error", () => resolve(true));
  });
}

async function main() {
  const [api, echo] = process.argv.slice(2);
  const toxiproxy = new Toxiproxy(api);
  const version = await toxiproxy.getVersion();

  const proxy = await toxiproxy.createProxy({ name: "node-echo", listen: "127.0.0.1:0", upstream: echo });
  assert.strictEqual(proxy.enabled, true);
  const base = await roundTrip(proxy.listen);

  const toxic = await proxy.addToxic({ name: "slow", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 300 } });
  assert.deepStrictEqual(toxic.attributes, { latency: 300, jitter: 0 });
  const slow = await roundTrip(proxy.listen);
  assert.ok(slow >= 300, `latency toxic: ${slow} ms`);

  const read = await proxy.getToxic("slow");
  assert.strictEqual(read.type, "latency");
  const updated = await read.update({ attributes: { latency: 600 }, toxicity: 1 });
  assert.strictEqual(updated.attributes.latency, 600);
  const slower = await roundTrip(proxy.listen);
  assert.ok(slower >= 600, `updated latency toxic: ${slower} ms`);
  await updated.remove();
  const fast = await roundTrip(proxy.listen);
  assert.ok(fast < 300, `after removal: ${fast} ms`);

  await assert.rejects(toxiproxy.get("missing"), /404/);
  await assert.rejects(proxy.addToxic({ type: "flood", attributes: {} }), /400/);

  const down = await proxy.update({ enabled: false });
  assert.strictEqual(down.enabled, false);
  assert.ok(await refused(proxy.listen), "a disabled proxy refuses connections");
  const up = await proxy.update({ enabled: true });
  assert.strictEqual(up.enabled, true);
  await roundTrip(proxy.listen);

  const populated = await toxiproxy.populate([{ name: "node-cache", listen: "127.0.0.1:0", upstream: echo }]);
  assert.deepStrictEqual(Object.keys(populated), ["node-cache"]);
  await proxy.addToxic({ type: "timeout", attributes: { timeout: 0 } });
  await toxiproxy.reset();
  const all = await toxiproxy.getAll();
  assert.deepStrictEqual(Object.keys(all).sort(), ["node-cache", "node-echo"]);
  for (const p of Object.values(all)) {
    await p.remove();
  }
  assert.deepStrictEqual(await toxiproxy.getAll(), {});
  console.log(JSON.stringify({ version, base_ms: base, latency_ms: slow, updated_ms: slower, after_ms: fast }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
