// A game day from Node, with @grpc/grpc-js and the .proto files of the repository loaded at run time by
// @grpc/proto-loader (no generated code).
//
// Lists the scenario catalogue and the experiments, starts a 503 abort on one route for a share of its
// requests (with a duration and a lease), watches the experiment's events until it has injected a few faults
// (renewing the lease meanwhile), reads its stats, stops it, and exits 0. Every step prints one line.
//
//   npm install '@grpc/grpc-js@^1.10.0' '@grpc/proto-loader@^0.7.10'
//   node examples/clients/node/gameday.js --target 127.0.0.1:7070 --route default --percentage 50
//
// Auth: with --token-file FILE (or $EDGEFAULT_TOKEN) every call carries `authorization: Bearer <token>`.
// TLS: --tls-ca FILE connects over TLS, trusting that CA (docs/clients.md).
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const opts = {
    target: process.env.EDGEFAULT_CONTROL || '127.0.0.1:7070',
    tokenFile: null,
    tlsCa: null,
    route: 'default',
    percentage: 50,
    duration: 120,
    lease: 10,
    injected: 3,
    timeout: 30,
    protoDir: path.resolve(__dirname, '..', '..', '..', 'proto'),
  };
  const names = {
    '--target': 'target', '--token-file': 'tokenFile', '--tls-ca': 'tlsCa', '--route': 'route',
    '--percentage': 'percentage', '--duration': 'duration', '--lease': 'lease', '--injected': 'injected',
    '--timeout': 'timeout', '--proto-dir': 'protoDir',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || argv[i + 1] === undefined) {
      console.error(`gameday.js: unknown or incomplete option ${argv[i]}; options: ${Object.keys(names).join(' ')}`);
      process.exit(2);
    }
    opts[key] = typeof opts[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return opts;
}

// Calls a unary method and resolves to its response.
function call(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client[method](request, metadata, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function seconds(s) {
  return { seconds: Math.floor(s), nanos: Math.round((s % 1) * 1e9) };
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const files = fs.readdirSync(path.join(a.protoDir, 'edgefault', 'v1'))
    .filter((f) => f.endsWith('.proto'))
    .map((f) => path.join('edgefault', 'v1', f));
  // keepCase: the fields keep their .proto names (http_status); enums as their names; 64-bit integers as
  // numbers; oneofs: the name of the set member in the oneof's own field (event.kind === 'stats').
  const definition = protoLoader.loadSync(files, {
    includeDirs: [a.protoDir], keepCase: true, enums: String, longs: Number, defaults: true, oneofs: true,
  });
  const v1 = grpc.loadPackageDefinition(definition).edgefault.v1;

  let token = null;
  if (a.tokenFile) token = fs.readFileSync(a.tokenFile, 'utf8').split('\n')[0].trim();
  else if (process.env.EDGEFAULT_TOKEN) token = process.env.EDGEFAULT_TOKEN.trim();
  const metadata = new grpc.Metadata();
  if (token) metadata.add('authorization', `Bearer ${token}`);

  const target = a.target.replace(/^https?:\/\//, '');
  const creds = a.tlsCa ? grpc.credentials.createSsl(fs.readFileSync(a.tlsCa)) : grpc.credentials.createInsecure();
  const client = new v1.FaultControl(target, creds);
  const state = (s) => String(s).replace(/^EXPERIMENT_STATE_/, '');

  const scenarios = (await call(client, 'ListScenarios', {}, metadata)).scenarios.map((s) => s.name);
  console.log(`scenarios: ${scenarios.length} (${scenarios.slice(0, 3).join(', ')}, …)`);
  const listed = await call(client, 'ListExperiments', {}, metadata);
  console.log(`experiments: ${listed.experiments.length}`);

  const spec = {
    name: 'node-client-503',
    description: 'started by examples/clients/node/gameday.js',
    match: { routes: [a.route] },
    percentage: a.percentage,
    duration: seconds(a.duration),
    lease: seconds(a.lease),
    faults: [{ abort: { http_status: 503, page: 'edge' } }],
  };
  const exp = await call(client, 'StartExperiment', { spec }, metadata);
  console.log(`started ${exp.id} ${exp.spec.name} ${state(exp.state)}`);

  // Events of this experiment, with a stats snapshot every 200 ms, until it has injected enough.
  const injected = await new Promise((resolve, reject) => {
    const stream = client.WatchEvents(
      { experiment_id: exp.id, stats_interval: { seconds: 0, nanos: 200e6 } },
      metadata,
      { deadline: new Date(Date.now() + a.timeout * 1000) },
    );
    let seen = 0;
    let renewed = Date.now();
    let done = false;
    const finish = () => { if (!done) { done = true; stream.cancel(); resolve(seen); } };
    stream.on('data', (event) => {
      if (done) return;
      if (event.kind === 'stats') {
        for (const c of event.stats.experiments) if (c.id === exp.id) seen = c.stats.injected;
        console.log(`event stats: injected ${seen}`);
      } else {
        console.log(`event ${event.kind}: ${event.experiment_id}`);
      }
      if (Date.now() - renewed > (a.lease * 1000) / 3) {
        renewed = Date.now();
        call(client, 'RenewLease', { id: exp.id }, metadata).then(() => console.log('lease renewed'), reject);
      }
      if (seen >= a.injected || ['stopped', 'expired', 'aborted'].includes(event.kind)) finish();
    });
    stream.on('error', (err) => {
      if (done || err.code === grpc.status.CANCELLED) return;
      if (err.code === grpc.status.DEADLINE_EXCEEDED) {
        console.log(`watch: no ${a.injected} injections within ${a.timeout}s`);
        finish();
      } else {
        reject(err);
      }
    });
  });

  const stats = await call(client, 'GetStats', { experiment_id: exp.id }, metadata);
  for (const c of stats.experiments) {
    const kinds = Object.entries(c.injected_by_kind).sort().map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    console.log(`stats ${c.id}: matched ${c.stats.matched} injected ${c.stats.injected} (${kinds})`);
  }
  const p = stats.proxy;
  console.log(`proxy: passed ${p.passed} injected ${p.injected} upstream_error ${p.upstream_error}`);

  const stopped = await call(client, 'StopExperiment', { id: exp.id, reason: 'node example done' }, metadata);
  console.log(`stopped ${stopped.id} ${state(stopped.state)}`);
  client.close();
  return injected >= a.injected ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (err) => {
  console.error(`gameday.js: ${err.code !== undefined ? `${grpc.status[err.code]}: ${err.details}` : err.stack}`);
  process.exitCode = 1;
});
