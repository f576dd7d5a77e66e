/**
 * The walkthrough in package.json against what the extension does: every path that performs a
 * step ticks it (each command that does it, tree variants included, and a state key the
 * extension really sets), the buttons a step shows tick it, and titles short enough not to be cut.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS, CONTEXT_KEYS, type CommandKey } from '../../src/shared/commands';
import {
  completionEvents,
  provisionedByTask,
  stepsDone,
  WALKTHROUGH_ID,
  WALKTHROUGH_STEPS,
} from '../../src/editor/walkthroughSteps';
import { TASK_TYPE } from '../../src/editor/tasks/definition';

const root = join(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  contributes: {
    commands: Array<{ command: string; title: string }>;
    walkthroughs: Array<{
      id: string;
      title: string;
      description: string;
      steps: Array<{ id: string; title: string; description: string; completionEvents: string[] }>;
    }>;
  };
};
const walkthrough = pkg.contributes.walkthroughs.find((w) => w.id === WALKTHROUGH_ID);
const steps = walkthrough?.steps ?? [];
const editorSources = readdirSync(join(root, 'src/editor'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => readFileSync(join(root, 'src/editor', f), 'utf8'));
const titleOf = new Map(pkg.contributes.commands.map((c) => [c.command, c.title]));

describe('walkthrough completion', () => {
  it('package.json lists the steps of walkthroughSteps.ts, each with its completion events', () => {
    assert.ok(walkthrough, `no walkthrough ${WALKTHROUGH_ID}`);
    assert.deepEqual(
      steps.map((s) => s.id),
      WALKTHROUGH_STEPS.map((s) => s.id),
    );
    for (const def of WALKTHROUGH_STEPS) {
      const st = steps.find((s) => s.id === def.id);
      assert.deepEqual(st?.completionEvents, completionEvents(def, COMMANDS), def.id);
    }
  });

  it('every completion event names a contributed command or a context key the extension sets', () => {
    const keys = new Map<string, string>(Object.entries(CONTEXT_KEYS).map(([k, v]) => [v, k]));
    for (const st of steps) {
      assert.ok(st.completionEvents.length >= 1, st.id);
      for (const e of st.completionEvents) {
        const [, type, arg = ''] = /^(\w+):(.*)$/.exec(e) ?? [];
        if (type === 'onCommand') {
          assert.ok(titleOf.has(arg), `${st.id}: ${arg} is not a contributed command`);
        } else if (type === 'onContext') {
          const name = keys.get(arg);
          assert.ok(name, `${st.id}: ${arg} is not in CONTEXT_KEYS`);
          assert.ok(
            editorSources.some(
              (src) => src.includes(`'setContext'`) && src.includes(`CONTEXT_KEYS.${name}`),
            ),
            `${st.id}: nothing in src/editor sets ${arg}`,
          );
        } else {
          assert.fail(`${st.id}: unexpected completion event ${e}`);
        }
      }
    }
  });

  it("every command a step's description links to ticks the step, or only starts it and the step's state ticks it", () => {
    const idOf = new Map<string, CommandKey>(
      Object.entries(COMMANDS).map(([k, v]) => [v, k as CommandKey]),
    );
    for (const st of steps) {
      const def = WALKTHROUGH_STEPS.find((d) => d.id === st.id)!;
      const linked = [...st.description.matchAll(/\(command:([\w.]+)/g)].map((m) => m[1]!);
      assert.ok(linked.length >= 1, `${st.id} has no button`);
      for (const id of linked) {
        if (st.completionEvents.includes(`onCommand:${id}`)) continue;
        assert.ok(
          def.starts?.includes(idOf.get(id)!),
          `${st.id}: ${id} neither ticks nor starts it`,
        );
        assert.ok(def.state, `${st.id}: ${id} only starts it, and no state ticks it`);
      }
    }
  });

  it('provisioning ticks on the outcome: not on the preview, not when the task starts, on a task that ended with exit 0', () => {
    const provisioned = { [CONTEXT_KEYS.provisioned]: true };
    // Running (or previewing) is not having provisioned: the task may be declined or fail.
    for (const command of ['provisionPreview', 'provisionEtcd'] as const) {
      assert.deepEqual(stepsDone({}, { command, ok: true }), [], command);
      assert.ok(
        !steps
          .find((s) => s.id === 'provision')
          ?.completionEvents.includes(`onCommand:${COMMANDS[command]}`),
        `VS Code itself would tick the step on ${command}`,
      );
    }
    assert.deepEqual(stepsDone(provisioned), ['provision']);
    assert.deepEqual(stepsDone(provisioned, { command: 'provisionEtcd', ok: false }), [
      'provision',
    ]);
    // The state: a Provision etcd task that ended with exit code 0, nothing else.
    const def = { type: TASK_TYPE, operation: 'provision-etcd', cluster: 'edge-a' };
    assert.equal(provisionedByTask(def, 0), true);
    const hostDef: typeof def & { host: string } = { ...def, host: 'edge-2' };
    assert.equal(provisionedByTask(hostDef, 0), true);
    assert.equal(provisionedByTask(def, 1), false, 'declined Apply, or failed');
    assert.equal(provisionedByTask(def, undefined), false, 'ended without an exit code');
    assert.equal(provisionedByTask({ ...def, operation: 'install-k3s' }, 0), false);
    assert.equal(provisionedByTask({ ...def, type: 'shell' }, 0), false);
  });

  it('a step command ticks its step when it finished without an error, never when it failed', () => {
    assert.deepEqual(stepsDone({}, { command: 'certsGenerate', ok: true }), ['certificates']);
    assert.deepEqual(stepsDone({}, { command: 'certsGenerate', ok: false }), []);
    assert.deepEqual(stepsDone({}, { command: 'clusterOpenHealth', ok: true }), ['health']);
    assert.deepEqual(stepsDone({}, { command: 'treeRefresh', ok: true }), []);
    // State keys tick their steps whatever ran; a state that is false ticks nothing.
    assert.deepEqual(
      stepsDone(
        { [CONTEXT_KEYS.inventoryPresent]: true, [CONTEXT_KEYS.hasCertificates]: false },
        { command: 'k3sBackup', ok: true },
      ),
      ['inventory', 'backup'],
    );
  });

  it('a variant of a step command (same title, other id: a tree or inline action) ticks it too', () => {
    for (const st of steps) {
      const ids = st.completionEvents
        .filter((e) => e.startsWith('onCommand:'))
        .map((e) => e.slice('onCommand:'.length));
      const titles = new Set(ids.map((id) => titleOf.get(id)?.replace(/…$/, '')));
      for (const [id, title] of titleOf) {
        if (!titles.has(title.replace(/…$/, ''))) continue;
        assert.ok(
          ids.includes(id),
          `${st.id}: ${id} ("${title}") does the step but does not tick it`,
        );
      }
    }
  });

  it('titles are short enough for the walkthrough page at the default size', () => {
    // Collapsed steps show their title on one line (about 30 characters at 1400x900); the
    // walkthrough's description gets three lines of about 25. test/editor/walkthrough checks
    // the page itself.
    for (const st of steps) assert.ok(st.title.length <= 24, `"${st.title}" is cut off`);
    assert.ok((walkthrough?.title.length ?? 0) <= 30, walkthrough?.title);
    assert.ok((walkthrough?.description.length ?? 0) <= 75, walkthrough?.description);
  });
});
