/**
 * A K3s server's datastore client set as plan steps: the CA, the K3s client certificate and its
 * key (0600, staged as a payload) in /etc/rancher/k3s/etcd. The install plan (server.ts) and the
 * renewal of those files (datastoreRoll.ts) write them with the same steps, so both leave the
 * host the same files and modes.
 */
import { fileStep, sha256, type Payload, type Step } from '../plan/steps';
import { K3S_DATASTORE_FILES } from '../k3sHost/datastoreFiles';

/** The three files, as bytes. */
export interface DatastoreClientFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The step ids K3s restarts on when one of its datastore files changes. */
export const DATASTORE_STEP_IDS = ['ca', 'cert', 'key'] as const;

export function datastoreFileSteps(files: DatastoreClientFiles): {
  steps: Step[];
  payloads: Payload[];
} {
  return {
    steps: [
      fileStep({
        id: 'ca',
        title: `datastore CA ${K3S_DATASTORE_FILES.ca}`,
        path: K3S_DATASTORE_FILES.ca,
        content: files.ca,
        mode: 0o644,
      }),
      fileStep({
        id: 'cert',
        title: `datastore client certificate ${K3S_DATASTORE_FILES.cert}`,
        path: K3S_DATASTORE_FILES.cert,
        content: files.cert,
        mode: 0o644,
      }),
      fileStep({
        id: 'key',
        title: `datastore client key ${K3S_DATASTORE_FILES.key} (0600)`,
        path: K3S_DATASTORE_FILES.key,
        content: files.key,
        mode: 0o600,
        payload: 'client-key.pem',
      }),
    ],
    payloads: [
      { name: 'client-key.pem', content: files.key, sha256: sha256(files.key), step: 'key' },
    ],
  };
}
