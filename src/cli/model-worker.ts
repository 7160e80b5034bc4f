/**
 * The datastore side of `podway run`, in its own thread: it watches the datastore, parses and
 * validates every change and computes this node's model, so none of that (hundreds of ms for a
 * file of 1,000 endpoints) ever runs on the forwarding thread. The main thread receives only
 * finished models, or word that the model did not change.
 *
 * workerData: { spec, node } (spec as `podway run --datastore`; with --bgp also bgp, bgpSecretsDir,
 * routerId, heldLearned, forwardingKept). The datastore is opened on
 * {type:'start'} (the main thread registers the node first), so the thread (and its BGP speaker)
 * can run before the datastore answers. Messages posted:
 *   {type:'model', model, ms, cause, bgp?, gen, bgpInputs?}  a new model (the first one too); cause
 *                                  'datastore' or 'bgp' (the learned routes changed); bgp: what a
 *                                  datastore change did to the speaker ("peer A changed (session
 *                                  reset)"); gen: its number, for the main thread's {type:'applied'}
 *                                  answer (the first model's too); bgpInputs: with --bgp, the BGP
 *                                  settings of its snapshot (for the model cache); felixOnlyOf:
 *                                  the gen of the model posted before it when the two differ in
 *                                  their FelixConfigurations alone (forwardingKey)
 *   {type:'unchanged', ms, cause, bgp?, bgpInputs?}  a change that leaves this node's model as it
 *                                  is (bgpInputs when the BGP settings changed)
 *   {type:'rejected', message}     a valid snapshot this node cannot use (e.g. its Node is gone)
 *   {type:'error', message}        an invalid edit, a read error, the store unreachable (the last
 *                                  good state stays; before the first model: still trying)
 *   {type:'status', message}       the datastore is reachable again, or re-listing (for the log)
 *   {type:'fatal', message}        the datastore could not be used at start (it is closed; a later
 *                                  {type:'start'} tries again)
 *   {type:'log', level, message}   a line for the log (BGP sessions coming and going)
 *   {type:'warning', message}      a snapshot's warning (an endpoint left out, an address claimed on
 *                                  two nodes), once when it appears (not again on every change)
 *   {type:'policies', policies}    the network policies stored (counts, a few names: podway enforces
 *                                  none), when they first are known and whenever they change
 *   {type:'bgp-status', id, status} the answer to {type:'bgp-status', id} (`podway node status`)
 *   {type:'crash', message, stack?} an exception nothing caught (or a rejection nothing handled)
 *                                  is ending this thread: posted just before it ends (exit code 70)
 *   {type:'pong', id}              the answer to the heartbeat's {type:'ping', id}: a thread that
 *                                  does not answer within 20 s is terminated (model-source.ts)
 * Messages taken: {type:'start'}, {type:'cached-bgp', inputs, appliedAt, file} (with --bgp: run
 * the speaker on the model cache's BGP settings until a datastore snapshot's model is applied),
 * {type:'stop'}, {type:'bgp-status', id}, {type:'ping', id}, {type:'reconnect', reason} (new
 * connections to etcd: the node address the old ones came from has left the node), and
 * {type:'applied', gen, ok, message?} (the engine applied model gen, or refused it).
 * 'error', 'status', 'model' and 'unchanged' from etcd or the embedded store carry inSync: whether
 * the store is reachable and not re-listing (readiness; a file datastore is always in sync).
 *
 * With workerData.bgp the thread also runs the BGP speaker (control/bgp/agent.ts), as calico-node
 * runs BIRD beside Felix: each snapshot whose model the forwarding engine applied updates its
 * peers and exports (one rejected here, or refused by the engine, leaves the speaker alone), and
 * each change of the learned routes recomputes the model from the last accepted snapshot. The
 * first datastore model too: on the cached model the engine may refuse it, and the speaker then
 * keeps the cache's settings. Started on the cache's settings, the speaker is the same one the
 * datastore's settings then update (agent.update diffs them): the same router ID and peers keep
 * their sessions and the listener is not bound again.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
// The modules this thread uses, not the control plane's index: a datastore's own modules load
// when its spec is opened (open-datastore.ts) and the BGP speaker's with --bgp, so a start loads
// no YAML parser for an etcd or embedded store and no etcd client for a file or embedded one.
import { openDatastore, resolveDatastoreSpec } from '../control/open-datastore';
import { computeNodeModel, felixLayersOf, type NodeDataplaneModel } from '../control/route-calc';
import { summarizePolicies } from '../control/policy-kinds';
import type { ClusterSnapshot } from '../control/snapshot';
import { KvDatastore } from '../control/kv-datastore';
import { findUnderlay } from '../dataplane/host';
import type { NodeStatus } from '../control/bgp/agent';
import type { LearnedRoute } from '../control/route-calc';
import type { TunnelMtuSettings } from '../control/felix-mtu';
import { secretFromDir, watchSecrets } from './bgp-secrets';
import type { Datastore } from '../control/datastore';
import { bgpInputsOf, snapshotOfBgpInputs, type BgpInputs } from '../control/bgp/cached-inputs';
import { speakerNotStartedStatus } from '../control/bgp/readiness';

interface ModelWorkerInit { spec: string; node: string; bgp?: boolean; bgpSecretsDir?: string; routerId?: string; heldLearned?: readonly LearnedRoute[]; forwardingKept?: boolean; tunnelMtuEnv?: TunnelMtuSettings }

/** How long the learned routes of an earlier run are held at most (BGP's graceful restart time, as
 * our peers keep ours, and as the engine holds the kernel's learned routes it adopts). */
const HELD_LEARNED_MS = 120_000;

/** What `podway node status` gets when BGP is off. */
export function bgpDisabledStatus(node: string): NodeStatus {
  return { enabled: false, node, asNumber: null, routerId: null, peers: [], exported: 0, learned: 0 };
}

/** A model's identity for "nothing changed" (Sets as sorted arrays, so equal models compare equal). */
export function modelKey(model: NodeDataplaneModel): string {
  return forwardingKey(model) + '\u0000' + JSON.stringify(model.felix ?? null);
}

/** modelKey without the FelixConfigurations: two models with the same forwarding key differ in
 * those alone, and the main thread applies such a model's settings without applying it again
 * (run.ts applySettingsOnly). */
export function forwardingKey(model: NodeDataplaneModel): string {
  // bgpLearned is what the routes were computed from, not forwarding state: a change of it alone
  // (a peer now bringing a prefix with the same next hop) does not make a new model.
  return JSON.stringify(model, (k, v) => (k === 'bgpLearned' || k === 'felix' ? undefined : v instanceof Set ? [...v].sort() : v));
}

if (parentPort) {
  const port = parentPort;
  const init = workerData as ModelWorkerInit;
  // An exception nothing caught (etcd3 rethrows a listener's error from its gRPC stream handler)
  // or a rejection nothing handled ends this thread: what did is posted first, with its stack, so
  // the log names it (the main thread starts a new thread: model-source.ts), then the thread ends.
  const died = (what: string, e: unknown): never => {
    const err = e instanceof Error ? e : new Error(String(e));
    try {
      port.postMessage({ type: 'crash', message: `${what}: ${err.message}`, ...(err.stack ? { stack: err.stack } : {}) });
    } catch {
      // not cloneable or the port closed: the exit code still says the thread died
    }
    process.exit(70);
  };
  process.on('uncaughtException', (e) => died('uncaught exception', e));
  process.on('unhandledRejection', (e) => died('unhandled rejection', e));
  // file:PATH (the YAML file), etcd:URL[,URL] or embedded:DIR (Calico's etcd v3 layout); opened
  // on {type:'start'}, again after a start that failed.
  let store: Datastore | null = null;
  /** While the speaker runs on the model cache's BGP settings: that model's time (status). */
  let cachedSettings: string | null = null;
  /** Why the cache's settings could not be used (status while the speaker waits). */
  let cachedRefused: string | null = null;
  /** The BGP settings last posted with a model or change (the main thread caches them). */
  let inputsKey = '';
  /** The underlay MTU by node IP, read once per address (it decides the tunnel MTUs). */
  const underlayMtu = new Map<number | string, number>();
  let lastKey = '';
  /** lastKey's model: its forwarding key (forwardingKey) and its number (0: none posted). */
  let lastForwarding = '';
  let lastKeyGen = 0;
  let lastSnapshot: ClusterSnapshot | null = null;
  /** The model the engine last applied (its key, its snapshot): a refused model falls back to it. */
  let appliedKey = '';
  let appliedForwarding = '';
  let appliedGen = 0;
  let appliedSnapshot: ClusterSnapshot | null = null;
  /** Models posted and not yet answered by the main thread ({type:'applied'}), oldest first, with
   * the snapshot the speaker follows once the engine applied that model. */
  let gen = 0;
  const pending: { gen: number; key: string; forwarding: string; snap: ClusterSnapshot; datastore: boolean }[] = [];
  let learned: readonly LearnedRoute[] = [];
  /** Every BGP peer's IPv4 routes are all here (BgpAgent onLearned). */
  let complete = false;
  // The speaker's modules load with --bgp only.
  const speakerModule = init.bgp ? (require('../control/bgp/speaker') as typeof import('../control/bgp/speaker')) : null;
  // The first speaker of a restart whose forwarding state is still there (a model cache of this
  // boot, or this thread started again after one died: model-source.ts) says so in its OPENs
  // (graceful restart's R and F bits); after a reboot the pods and their routes are gone, and F
  // would have the peers forward to this node on routes of the earlier boot. A speaker made anew
  // later (its settings changed) is not a restart.
  let restarted = init.forwardingKept === true;
  const agent = speakerModule
    ? new (require('../control/bgp/agent') as typeof import('../control/bgp/agent')).BgpAgent({
        node: init.node,
        createSpeaker: (options) => {
          const speaker = new speakerModule.BgpSpeaker({ ...options, restarted, log: (level, message) => port.postMessage({ type: 'log', level, message }) });
          restarted = false;
          return speaker;
        },
        resolveSecret: init.bgpSecretsDir ? (name, key) => secretFromDir(init.bgpSecretsDir!, name, key) : undefined,
        ...(init.routerId !== undefined ? { routerId: init.routerId } : {}),
        log: (message, level = 'info') => port.postMessage({ type: 'log', level, message }),
        onLearned: (routes, all) => {
          learned = routes;
          complete = all;
          if (lastSnapshot) onChange(lastSnapshot, false);
        },
      })
    : null;
  // A rotated BGPPeer password (or one that appears) is read again and the plan made anew at once,
  // as calico-node's confd watches its secrets: not at the next datastore change.
  const secretsWatch = agent && init.bgpSecretsDir
    ? watchSecrets(init.bgpSecretsDir, {
        secretsInUse: () => agent.secretsInUse(),
        onCheck: () => {
          const said = agent.recheckSecrets();
          if (said) port.postMessage({ type: 'log', level: 'info', message: `bgp: ${said}` });
        },
      })
    : null;
  // A restart: the earlier run's learned routes are in the first model already (pods forward across
  // nodes as soon as the dataplane is up), each held until its peer has sent its table again.
  if (agent && init.heldLearned?.length) {
    agent.holdStale(init.heldLearned, HELD_LEARNED_MS);
    learned = agent.learned();
  }

  const modelFor = (snap: ClusterSnapshot): NodeDataplaneModel => {
    // Felix's tunnel MTU settings: podway run's FELIX_* over the snapshot's FelixConfigurations
    const bgp = { ...(agent ? { bgp: { learned, complete } } : {}), ...(init.tunnelMtuEnv ? { tunnelMtuEnv: init.tunnelMtuEnv } : {}) };
    const first = computeNodeModel(snap, init.node, bgp);
    // IPv6-only node (no IPv4 address): the interface holding its IPv6 address
    const at = first.node.ip ?? first.v6.ip6 ?? '';
    let mtu = underlayMtu.get(at);
    if (mtu === undefined) {
      mtu = findUnderlay(first.node.ip, first.v6.ip6).mtu;
      underlayMtu.set(at, mtu);
    }
    const model = mtu === first.mtu.underlay ? first : computeNodeModel(snap, init.node, { underlayMtu: mtu, ...bgp });
    // This node's FelixConfigurations (default, node.NAME) ride along as stored: a change of one
    // is a new model (the main thread applies the settings it has an equivalent of:
    // felix-settings.ts), and the model cache keeps them for a start on the cache.
    const felix = felixLayersOf(snap, init.node);
    const withFelix = felix.default === null && felix.node === null ? model : { ...model, felix };
    // With BGP the learned routes go with the model (and so into the model cache): a restart holds
    // them until the peers have sent their tables again.
    return agent ? { ...withFelix, bgpLearned: learned } : withFelix;
  };

  /** A new snapshot updates the speaker's peers and exports; a bad plan keeps the last one.
   * Returns what changed for the speaker ('' when nothing), for the log. */
  const updateBgp = (snap: ClusterSnapshot): string => {
    if (!agent) return '';
    let said: string;
    try {
      said = agent.update(snap);
    } catch (e) {
      port.postMessage({ type: 'error', message: `bgp: ${(e as Error).message} (keeping the last BGP settings)`, inSync: inSync() });
      return '';
    }
    if (cachedSettings === null) return said;
    // The handover: the datastore's settings replace the cache's in the same speaker (agent.update
    // diffs them: the same router ID and peers keep their sessions).
    port.postMessage({ type: 'log', level: 'info', message: `bgp: the datastore's settings replace the model cache's from ${cachedSettings}: ${said || 'the same speaker, peers and exports (sessions kept)'}` });
    cachedSettings = null;
    return '';
  };

  // The snapshot's warnings were computed and dropped before: a WorkloadEndpoint left out (its
  // address or interface taken by another) vanished without a word.
  let warned = new Set<string>();
  const warnNew = (snap: ClusterSnapshot): void => {
    const now = new Set(snap.warnings);
    for (const w of now) if (!warned.has(w)) port.postMessage({ type: 'warning', message: w });
    warned = now;
  };

  // Network policy is not enforced: what the datastore holds is said to the main thread (log,
  // status, metrics), when first known and on each change.
  let policiesKey: string | null = null;
  const reportPolicies = (snap: ClusterSnapshot): void => {
    if (snap.policies === undefined) return;
    const policies = summarizePolicies(snap.policies);
    const key = JSON.stringify(policies);
    if (key === policiesKey) return;
    policiesKey = key;
    port.postMessage({ type: 'policies', policies });
  };

  /** The snapshot's model (throws when this node cannot use it: its Node gone, an address no
   * interface holds); only an accepted snapshot becomes the last one. */
  const accept = (snap: ClusterSnapshot): NodeDataplaneModel => {
    warnNew(snap);
    reportPolicies(snap);
    const model = modelFor(snap);
    lastSnapshot = snap;
    return model;
  };

  /** Posts the model, or that it did not change. `cause`: a datastore change or the learned BGP
   * routes; `bgp`: what the change did to the speaker (both for the log). */
  const publish = (model: NodeDataplaneModel, t0: number, cause: 'datastore' | 'bgp', bgp: string, snap: ClusterSnapshot | null = null): void => {
    const forwarding = forwardingKey(model);
    const key = forwarding + '\u0000' + JSON.stringify(model.felix ?? null);
    const ms = Math.round((performance.now() - t0) * 10) / 10;
    const why = { cause, ...(bgp ? { bgp } : {}) };
    const datastore = cause === 'datastore';
    // The BGP settings with the model (or a change that moved only them), for the model cache.
    let bgpInputs: BgpInputs | undefined;
    if (agent && snap && datastore) {
      const inputs = bgpInputsOf(snap, init.node);
      const k = JSON.stringify(inputs);
      if (k !== inputsKey || key !== lastKey) bgpInputs = inputs;
      inputsKey = k;
    }
    const withInputs = bgpInputs ? { bgpInputs } : {};
    if (key === lastKey) {
      // The model in force (or on its way): a datastore change that leaves it as it is (a BGP
      // peer added, say) moves the speaker now, or once the model on its way is applied.
      if (datastore && snap && pending.length) pending[pending.length - 1] = { ...pending[pending.length - 1], snap, datastore: true };
      const said = datastore && snap && !pending.length ? updateBgp(snap) : '';
      port.postMessage({ type: 'unchanged', ms, ...why, ...(said ? { bgp: said } : {}), ...withInputs, ...inSyncField() });
      return;
    }
    // Only its FelixConfigurations differ from the model last posted (number lastKeyGen): said, so
    // that the main thread, with that model in force, applies the settings alone.
    const felixOnlyOf = lastKeyGen > 0 && forwarding === lastForwarding ? { felixOnlyOf: lastKeyGen } : {};
    lastKey = key;
    lastForwarding = forwarding;
    ++gen;
    lastKeyGen = gen;
    if (snap) pending.push({ gen, key, forwarding, snap, datastore });
    port.postMessage({ type: 'model', model, ms, ...why, gen, ...felixOnlyOf, ...withInputs, ...inSyncField() });
  };

  /** The main thread's answer for model `g`: applied, the speaker follows its snapshot; refused,
   * the speaker keeps its last settings (a new router ID would restart every session and have the
   * peers withdraw this node's routes while it forwards on the last good state). Older models
   * still unanswered were replaced by this one in the main thread (never applied). */
  const onApplied = (g: number, ok: boolean, message: string): void => {
    let entry: (typeof pending)[number] | undefined;
    /** A datastore change among the models this one replaced (said when it is refused). */
    let datastore = false;
    while (pending.length && pending[0].gen <= g) {
      entry = pending.shift()!;
      datastore ||= entry.datastore;
    }
    if (!entry || entry.gen !== g) return;
    if (ok) {
      appliedKey = entry.key;
      appliedForwarding = entry.forwarding;
      appliedGen = entry.gen;
      appliedSnapshot = entry.snap;
      const said = updateBgp(entry.snap);
      if (said) port.postMessage({ type: 'log', level: 'info', message: `datastore change applied by the engine; bgp: ${said}` });
      return;
    }
    if (datastore && agent) port.postMessage({ type: 'log', level: 'error', message: `rejected by the forwarding engine: ${message} (BGP keeps its last settings)` });
    // The same model again later is posted again (the engine may take it then), and the learned
    // routes are recomputed from the snapshot the engine runs on.
    if (!pending.length) {
      lastKey = appliedKey;
      lastForwarding = appliedForwarding;
      lastKeyGen = appliedGen;
      if (appliedSnapshot) lastSnapshot = appliedSnapshot;
    }
  };

  const inSync = (): boolean | undefined => (store instanceof KvDatastore ? store.inSync : undefined);
  /** With a model: a snapshot made while another prefix is still being re-listed is not in sync. */
  const inSyncField = (): { inSync?: boolean } => {
    const v = inSync();
    return v === undefined ? {} : { inSync: v };
  };
  // The speaker follows only snapshots whose model was accepted: a rejected one (a Node address no
  // interface here holds, written by an operator or a second podway for this node elsewhere) must
  // not restart it with that address as router ID, which drops every session and withdraws the
  // node's routes while the dataplane keeps forwarding on the last good state.
  const onChange = (snap: ClusterSnapshot, fromDatastore = true): void => {
    const t0 = performance.now();
    let model: NodeDataplaneModel;
    try {
      model = accept(snap);
    } catch (e) {
      port.postMessage({ type: 'rejected', message: `${(e as Error).message}${agent && fromDatastore ? ' (BGP keeps its last settings)' : ''}` });
      return;
    }
    // The speaker moves once the engine applied the model (onApplied).
    publish(model, t0, fromDatastore ? 'datastore' : 'bgp', '', snap);
  };
  /**
   * The speaker on the model cache's BGP settings (podway forwarding on the cached model, the
   * datastore unreachable): the plan is made from them as from a snapshot (passwords from
   * --bgp-secrets as always), exporting the prefixes the cache lists and passing on learned routes
   * by the pools it lists. Ignored once a snapshot's settings are in force (the datastore answered
   * first). `withdrawn` (why): the cache turned out not to be this node's state (its Node deleted
   * and registered again, run.ts onNodeVerdict): the same peers and sessions, nothing exported and
   * no learned route passed on, so every prefix announced from the cache is withdrawn at once on
   * the sessions it was announced on (a graceful stop would have the peers keep them as
   * graceful-restart helpers), until the datastore's settings take over in this speaker.
   */
  const useCachedBgp = (inputs: BgpInputs, appliedAt: string, file: string, withdrawn?: string): void => {
    if (!agent || (agent.hasPlan() && cachedSettings === null)) return;
    if (withdrawn === undefined && agent.hasPlan()) return; // on the cache's settings already
    const exportedBefore = agent.hasPlan() ? agent.status().exported : 0;
    try {
      agent.update(snapshotOfBgpInputs(inputs, `the model cache ${file}`), withdrawn !== undefined
        ? { exports: [], learnedExport: { pools: [], blocks: [] } }
        : { exports: inputs.exports, ...(inputs.learnedExport ? { learnedExport: inputs.learnedExport } : {}) });
      cachedSettings = appliedAt;
      cachedRefused = null;
      const s = agent.status();
      const message = withdrawn !== undefined
        ? `bgp: the model cache is not this node's state (${withdrawn}): ${exportedBefore} prefix${exportedBefore === 1 ? '' : 'es'} it exported withdrawn, the sessions kept, until the datastore's settings take over (router ID ${s.routerId}, AS ${s.asNumber}, ${s.peers.length} peers, nothing exported or passed on)`
        : `bgp: on the model cache's settings from ${appliedAt} until the datastore answers: router ID ${s.routerId}, AS ${s.asNumber}, ${s.peers.length} peers, ${s.exported} prefixes exported`;
      port.postMessage({ type: 'log', level: withdrawn !== undefined ? 'warn' : 'info', message });
    } catch (e) {
      cachedRefused = `the model cache's BGP settings cannot be used (${(e as Error).message})`;
      port.postMessage({ type: 'log', level: 'error', message: `bgp: ${cachedRefused}: the speaker starts once the datastore answers` });
    }
  };
  const bgpStatus = () => {
    if (!agent) return bgpDisabledStatus(init.node);
    if (!agent.hasPlan() && cachedRefused) return speakerNotStartedStatus(init.node, `it starts once the datastore answers (${cachedRefused})`);
    return { ...agent.status(), cachedSettings };
  };
  // On etcd, the client (etcd3, @grpc/grpc-js, protobufjs parsing etcd's .proto files: hundreds of
  // ms) loads at once, while the main thread registers the node (run.ts spawns this thread before
  // that): {type:'start'} then finds it loaded. A spec that does not parse is left to the start.
  setImmediate(() => {
    let kind: string;
    try {
      kind = resolveDatastoreSpec(init.spec).kind;
    } catch {
      return;
    }
    if (kind === 'etcd') require('../control/kv/etcd-kv');
  });
  port.on('message', (m: { type: string; id?: number; reason?: string; gen?: number; ok?: boolean; message?: string; inputs?: BgpInputs; appliedAt?: string; file?: string; withdrawn?: string }) => {
    if (m.type === 'ping') {
      // The main thread's heartbeat (model-source.ts): a thread that stops answering is ended.
      port.postMessage({ type: 'pong', id: m.id });
    } else if (m.type === 'applied') {
      onApplied(m.gen ?? 0, m.ok === true, m.message ?? 'refused');
    } else if (m.type === 'start') {
      startStore();
    } else if (m.type === 'cached-bgp') {
      useCachedBgp(m.inputs!, m.appliedAt ?? '?', m.file ?? 'the model cache', m.withdrawn);
    } else if (m.type === 'reconnect') {
      if (store instanceof KvDatastore) store.reconnect(m.reason ?? 'asked');
    } else if (m.type === 'stop') {
      // Graceful: our peers keep our routes for the restart time (a restart is not a withdrawal).
      secretsWatch?.close();
      void (agent ? agent.stop({ graceful: true }) : Promise.resolve()).then(() => store?.close()).then(() => port.close());
    } else if (m.type === 'bgp-status') {
      port.postMessage({ type: 'bgp-status', id: m.id, status: bgpStatus() });
    }
  });
  /** The datastore opened and its first snapshot's model posted ('fatal' and closed when it cannot
   * be used: the main thread stops, or on the cached model asks again later). */
  const startStore = (): void => {
    if (store) return;
    const s = openDatastore(init.spec);
    store = s;
    const mine = <T extends unknown[]>(fn: (...a: T) => void) => (...a: T) => { if (store === s) fn(...a); };
    s.onError(mine((e: Error) => port.postMessage({ type: 'error', message: e.message, inSync: inSync() })));
    // Informational lines of a KV datastore: reachable again, resyncing after a compaction.
    if (s instanceof KvDatastore) s.onStatus(mine((line: string) => port.postMessage({ type: 'status', message: line, inSync: inSync() })));
    // The store was replaced (etcd rebuilt, wiped, restored): the main thread registers the node again.
    if (s instanceof KvDatastore) s.onStoreReplaced(mine((line: string) => port.postMessage({ type: 'store-replaced', message: line, inSync: inSync() })));
    const fail = (message: string): void => {
      if (store !== s) return;
      store = null;
      lastSnapshot = null;
      void s.close().catch(() => undefined);
      port.postMessage({ type: 'fatal', message });
    };
    // The first snapshot: a model this node cannot compute is fatal at start (not later).
    const t0 = performance.now();
    s.start().then(
      (snap) => {
        if (store !== s) return;
        let model: NodeDataplaneModel;
        try {
          model = accept(snap);
        } catch (e) {
          fail((e as Error).message);
          return;
        }
        // The first model, as every later one: the speaker follows its snapshot once the engine
        // applied it (onApplied). At start the engine is built on it (refused: podway stops); on
        // the cached model a refused one leaves the speaker on the cache's settings.
        publish(model, t0, 'datastore', '', snap);
        // Changes from here on (a reload only runs after the watch's debounce, so none is missed).
        s.onSnapshot(mine(onChange));
      },
      (e) => fail((e as Error).message),
    );
  };
}
