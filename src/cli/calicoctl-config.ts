/**
 * calicoctl's connection file (`-c/--config FILE`, default /etc/calico/calicoctl.cfg): a
 * CalicoAPIConfig in YAML or JSON,
 *
 *     apiVersion: projectcalico.org/v3
 *     kind: CalicoAPIConfig
 *     spec: {datastoreType: etcdv3, etcdEndpoints: ..., etcdKeyFile, etcdCertFile, etcdCACertFile}
 *
 * read into podway's datastore spec (kv/spec.ts): etcdEndpoints as ETCD_ENDPOINTS (comma-separated,
 * HOST:PORT without a scheme as http://, https:// with TLS files), the three files as
 * ETCD_*_FILE. As calicoctl (libcalico-go apiconfig, yaml.UnmarshalStrict) an unknown field is
 * an error, and an empty datastoreType is etcdv3 when etcdEndpoints is given. What podway's etcd
 * client cannot do (user/password, DNS discovery, inline certificates, the Kubernetes datastore)
 * is refused naming the field, not ignored. Kubernetes fields beside etcdv3 are ignored, as
 * calicoctl ignores them there.
 */
import { readFileSync } from 'node:fs';
import type { DatastoreEnv, DatastoreSpec } from '../control/kv/spec';
import { parseDatastoreSpec } from '../control/kv/spec';
import type { EtcdTlsFlags } from './etcd-tls-options';
import { closest } from '../control/calico-fields';

export const DEFAULT_CALICOCTL_CONFIG = '/etc/calico/calicoctl.cfg';

let defaultConfigPath = DEFAULT_CALICOCTL_CONFIG;
/** The default file's path (tests point it into their own directory; the CLI never changes it). */
export function setDefaultConfigPath(p: string | undefined): void {
  defaultConfigPath = p ?? DEFAULT_CALICOCTL_CONFIG;
}
export function defaultConfigFile(): string {
  return defaultConfigPath;
}

const ETCD_FIELDS: Record<string, keyof DatastoreEnv | null> = {
  etcdEndpoints: 'ETCD_ENDPOINTS',
  etcdKeyFile: 'ETCD_KEY_FILE',
  etcdCertFile: 'ETCD_CERT_FILE',
  etcdCACertFile: 'ETCD_CA_CERT_FILE',
};
/** calicoctl's etcd fields podway's client does not implement. */
const ETCD_UNSUPPORTED: Record<string, string> = {
  etcdUsername: 'etcd user/password authentication is not supported by podway (use client certificates: etcdCertFile, etcdKeyFile)',
  etcdPassword: 'etcd user/password authentication is not supported by podway (use client certificates: etcdCertFile, etcdKeyFile)',
  etcdDiscoverySrv: 'etcd DNS SRV discovery is not supported by podway (list the endpoints in etcdEndpoints)',
  etcdKey: 'inline keys are not supported by podway (give the file: etcdKeyFile)',
  etcdCert: 'inline certificates are not supported by podway (give the file: etcdCertFile)',
  etcdCACert: 'inline certificates are not supported by podway (give the file: etcdCACertFile)',
};
/** calicoctl's Kubernetes datastore fields: ignored beside etcdv3, as calicoctl ignores them. */
const K8S_FIELDS = new Set(['kubeconfig', 'k8sAPIEndpoint', 'k8sKeyFile', 'k8sCertFile', 'k8sCAFile', 'k8sAPIToken', 'k8sInsecureSkipTLSVerify',
  'k8sDisableNodePoll', 'usePodCIDR', 'kubeconfigInline', 'k8sClientQPS', 'k8sCurrentContext', 'calicoAPIGroup']);

/** The variables of Calico's (libcalico-go apiconfig's envconfig tags) podway reads for a datastore. */
export const CALICO_DATASTORE_VARIABLES = ['DATASTORE_TYPE', 'ETCD_ENDPOINTS', 'ETCD_KEY_FILE', 'ETCD_CERT_FILE', 'ETCD_CA_CERT_FILE'] as const;

/**
 * The environment as calicoctl reads it: libcalico-go's LoadClientConfigFromEnvironment is
 * envconfig.Process("calico", spec) (kelseyhightower/envconfig v1.4.0), which looks each variable
 * up as CALICO_NAME first and, only when that is not set at all, as NAME: CALICO_ETCD_ENDPOINTS
 * wins over ETCD_ENDPOINTS, each variable on its own (CALICO_DATASTORE_TYPE with ETCD_ENDPOINTS is
 * one etcd datastore), and a CALICO_ variable set empty still wins. `env` with the unprefixed
 * names holding what calicoctl would read (the CALICO_ ones are left in: kv/spec.ts names them in
 * its errors).
 */
export function calicoctlEnv(env: DatastoreEnv): DatastoreEnv {
  const out: Record<string, string | undefined> = { ...env };
  for (const name of CALICO_DATASTORE_VARIABLES) {
    const prefixed = env[`CALICO_${name}`];
    if (prefixed !== undefined) out[name] = prefixed;
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The datastore a CalicoAPIConfig file names; the --etcd-*-file flags win over its file fields (as
 * over Calico's variables). Errors start with the file and name the field.
 */
export function readCalicoctlConfig(file: string, flags: EtcdTlsFlags = {}): DatastoreSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${file}: cannot read the calicoctl config file${code === 'ENOENT' ? ' (no such file)' : code === 'EACCES' ? ' (permission denied)' : code === 'EISDIR' ? ' (a directory)' : `: ${(e as Error).message}`}`);
  }
  return parseCalicoctlConfig(text, file, flags);
}

/** A well-formed calicoctl config for another datastore (Kubernetes): when it is only the default
 * file, nobody asked podway to use it (run-datastore.ts passes it over with a note). */
export class NotEtcdConfig extends Error {}

export function parseCalicoctlConfig(text: string, file: string, flags: EtcdTlsFlags = {}): DatastoreSpec {
  const fail = (what: string): never => { throw new Error(`${file}: ${what}`); };
  let doc: unknown;
  try {
    const YAML = require('yaml') as typeof import('yaml');
    const docs = YAML.parseAllDocuments(text);
    if (docs.length !== 1) fail(`expected one CalicoAPIConfig document, found ${docs.length}`);
    const d = docs[0]!;
    if (d.errors.length) fail(`not YAML or JSON: ${d.errors[0]!.message.split('\n')[0]}`);
    doc = d.toJS();
  } catch (e) {
    if ((e as Error).message.startsWith(`${file}: `)) throw e;
    fail(`not YAML or JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) fail('expected a CalicoAPIConfig object (apiVersion, kind, spec)');
  const top = doc as Record<string, unknown>;
  for (const k of Object.keys(top)) if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(k)) fail(`unknown field "${k}"`);
  if (top.apiVersion !== 'projectcalico.org/v3') fail(`apiVersion: ${JSON.stringify(top.apiVersion ?? '')} is not projectcalico.org/v3 (calicoctl: unknown APIVersion)`);
  if (top.kind !== 'CalicoAPIConfig') fail(`kind: expected CalicoAPIConfig, got ${JSON.stringify(top.kind ?? '')}`);
  if (top.metadata !== undefined && top.metadata !== null && !isObject(top.metadata)) fail('metadata: expected an object');
  const spec = top.spec ?? {};
  if (!isObject(spec)) fail('spec: expected an object');
  const s = spec as Record<string, unknown>;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === 'datastoreType') continue;
    if (k in ETCD_UNSUPPORTED) {
      if (v !== undefined && v !== null && v !== '') fail(`spec.${k}: ${ETCD_UNSUPPORTED[k]}`);
      continue;
    }
    const envName = ETCD_FIELDS[k];
    if (envName) {
      if (v === null || v === undefined || v === '') continue;
      if (typeof v !== 'string') fail(`spec.${k}: expected a string, got ${JSON.stringify(v)}`);
      env[envName] = v as string;
      continue;
    }
    if (!K8S_FIELDS.has(k)) {
      // a near miss named, as a resource file's unknown field is (calico-fields.ts)
      const meant = closest(k, ['datastoreType', ...Object.keys(ETCD_FIELDS)]);
      fail(`spec.${k}: unknown field (${meant ? `did you mean ${meant}? ` : ''}podway reads datastoreType, etcdEndpoints, etcdKeyFile, etcdCertFile, etcdCACertFile)`);
    }
  }
  const type = s.datastoreType ?? '';
  if (typeof type !== 'string') fail(`spec.datastoreType: expected a string, got ${JSON.stringify(type)}`);
  // as calicoctl's applyConfigDefaults: empty is etcdv3 with endpoints, else kubernetes
  const effective = type === '' ? (env.ETCD_ENDPOINTS ? 'etcdv3' : 'kubernetes') : type;
  if (effective !== 'etcdv3') {
    const why = `${file}: ` + (type === ''
      ? 'spec.etcdEndpoints: not given, so calicoctl would use the Kubernetes datastore, which podway does not support (give spec.datastoreType: etcdv3 and spec.etcdEndpoints)'
      : `spec.datastoreType: ${JSON.stringify(type)}: podway supports etcdv3`);
    // kubernetes: a well-formed file for the other datastore Calico has; anything else is a mistake
    throw effective === 'kubernetes' ? new NotEtcdConfig(why) : new Error(why);
  }
  if (!env.ETCD_ENDPOINTS) fail('spec.etcdEndpoints: needed with datastoreType etcdv3 (e.g. http://127.0.0.1:2379)');
  if (flags.etcdCaCertFile) env.ETCD_CA_CERT_FILE = flags.etcdCaCertFile;
  if (flags.etcdCertFile) env.ETCD_CERT_FILE = flags.etcdCertFile;
  if (flags.etcdKeyFile) env.ETCD_KEY_FILE = flags.etcdKeyFile;
  if (!env.ETCD_CERT_FILE !== !env.ETCD_KEY_FILE) fail('spec.etcdCertFile and spec.etcdKeyFile must be given together');
  if (env.ETCD_CERT_FILE && !env.ETCD_CA_CERT_FILE) fail('spec.etcdCertFile needs spec.etcdCACertFile too');
  try {
    return parseDatastoreSpec(undefined, { DATASTORE_TYPE: 'etcdv3', ...env });
  } catch (e) {
    // kv/spec.ts names Calico's variable: here it is the file's field
    fail((e as Error).message.replace(/^ETCD_ENDPOINTS:/, 'spec.etcdEndpoints:').replace(/ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE/, 'spec.etcdCACertFile, etcdCertFile, etcdKeyFile'));
  }
  throw new Error('unreachable');
}
