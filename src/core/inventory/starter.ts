/** The commented starter file written by "Create Inventory" and `k3s-etcd inventory init`. */
import { DEFAULT_ETCD_VERSION } from '../etcdRelease/version';

export const STARTER_INVENTORY = `# K3s etcd inventory.
# Describes your K3s clusters, their edge hosts and which hosts run etcd members.
# The JSON Schema shipped with the extension gives completion and checks while you type
# (install a YAML language extension to see it). Secrets never go in this file: SSH
# passphrases, sudo passwords and the K3s token are asked for and kept in VS Code's
# secret storage.
version: 1
clusters:
  - name: edge-a                     # unique; certificates go to pki/edge-a by default
    datastore: external-etcd         # or k3s-embedded-etcd (K3s's own etcd)
    etcd: { version: ${DEFAULT_ETCD_VERSION}, clientPort: 2379, peerPort: 2380 }
    # etcd's own tuning goes in etcd: too, for example quotaBackendBytes: 8GiB, profile: edge
    # (heartbeat 500 ms, election 5 s for slow links and SD cards), extraArgs: [--log-level=warn].
    pki: { dir: pki/edge-a, algorithm: ecdsa-p256 }   # or ecdsa-p384, rsa-2048, rsa-4096
    k3s:                             # K3s servers on this etcd (the token is never here)
      install: online                # or offline (k3s + install.sh in offlineDir), existing
      disable: [servicelb, traefik]  # as the article does
    hosts:
      # etcd wants an odd number of members: 1, 3 or 5.
      - name: edge-1                 # unique in the cluster; the etcd member name by default
        address: 10.10.3.104         # IPv4, IPv6 or hostname; etcd URLs derive from it
        port: 22                     # SSH port
        user: root                   # SSH user (sudo is used when it is not root)
        identityFile: ~/.ssh/id_ed25519
        roles: [etcd, k3s-server]    # any of etcd, k3s-server, k3s-agent
      - name: edge-2
        address: 10.10.3.105
        user: root
        roles: [etcd]
      - name: edge-3
        address: 10.10.3.106
        user: root
        roles: [etcd]
`;
