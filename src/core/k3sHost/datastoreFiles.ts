/**
 * Where a K3s server keeps its external datastore's client set (the cluster's CA, the K3s client
 * certificate and its key): written by `k3s install`, read by `certs check`.
 */
export const K3S_ETCD_DIR = '/etc/rancher/k3s/etcd';
export const K3S_DATASTORE_FILES = {
  ca: `${K3S_ETCD_DIR}/ca.pem`,
  cert: `${K3S_ETCD_DIR}/client.pem`,
  key: `${K3S_ETCD_DIR}/client-key.pem`,
} as const;
