// Unknown keys in a network config (src/cni/config.ts unknownSettings): a warning naming the key and
// the known one it most likely meant, never an error (Calico's plugin ignores unknown keys, and other
// tools add their own); none for the CNI spec's, podway's or Calico's keys, nor for what
// `podway cni install` writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unknownSettings } from '../../src/cni/config';
import { conflistText } from '../../src/cni/install';

test('a misspelt key is named with the key meant; a key of another tool is named alone', () => {
  assert.equal(unknownSettings({ type: 'podway', mtuu: 1400 }), ['unknown key "mtuu" ignored (did you mean mtu?)']);
  assert.equal(unknownSettings({ type: 'podway', MTU: 1400 }), ['unknown key "MTU" ignored (did you mean mtu?)']);
  assert.equal(unknownSettings({ type: 'podway', interfacetype: 'tap' }), ['unknown key "interfacetype" ignored (did you mean interfaceType?)']);
  assert.equal(unknownSettings({ type: 'podway', etcd_endpoint: 'http://127.0.0.1:2379' }), ['unknown key "etcd_endpoint" ignored (did you mean etcd_endpoints?)']);
  assert.equal(unknownSettings({ type: 'podway', 'com.example.zone': 'a' }), ['unknown key "com.example.zone" ignored']);
});

test('no warning for the keys of the CNI spec, of podway, of Calico, nor for an installed conflist\'s plugin', () => {
  const calico = {
    cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'podway', log_level: 'info', log_file_path: '/var/log/calico/cni/cni.log',
    datastore_type: 'etcdv3', etcd_endpoints: 'http://127.0.0.1:2379', nodename: 'n1', mtu: 1440, ipam: { type: 'calico-ipam' },
    policy: { type: 'k8s' }, kubernetes: { kubeconfig: '/etc/cni/net.d/calico-kubeconfig' }, container_settings: { allow_ip_forwarding: true },
    runtimeConfig: {}, prevResult: {}, capabilities: { portMappings: true }, args: {},
  };
  assert.equal(unknownSettings(calico), []);
  const installed = JSON.parse(conflistText({ binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d', env: {}, name: 'podway', node: 'n1', datastore: 'etcd:http://127.0.0.1:2379', mtu: 1400, interfaceType: 'tap', control: '/run/podway/n1.sock', ipamLockFile: '/run/podway/ipam.lock', pendingDelDir: '/var/lib/podway/pending-del', conflist: '/etc/cni/net.d/10-podway.conflist' })) as { name: string; cniVersion: string; plugins: Record<string, unknown>[] };
  // as libcni hands the plugin its entry: name and cniVersion put in
  assert.equal(unknownSettings({ ...installed.plugins[0], name: installed.name, cniVersion: installed.cniVersion }), []);
});

test.run();
