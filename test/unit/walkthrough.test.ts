/**
 * The walkthrough in package.json against what the extension does: every path that performs a
 * step ticks it (each command that does it, tree variants included, and a state key the
 * extension really sets), the buttons a step shows tick it, and titles short enough not to be cut.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS, CONTEXT_KEYS } from '../../src/shared/commands';
import {
  completionEvents,
  WALKTHROUGH_ID,
  WALKTHROUGH_STEPS,
} from '../../src/editor/walkthroughSteps';

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

  it("every command a step's description links to ticks the step", () => {
    for (const st of steps) {
      const linked = [...st.description.matchAll(/\(command:([\w.]+)/g)].map((m) => m[1]!);
      assert.ok(linked.length >= 1, `${st.id} has no button`);
      for (const id of linked) assert.ok(st.completionEvents.includes(`onCommand:${id}`), id);
    }
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
